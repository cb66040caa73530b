#!/usr/bin/env bash
# AssemblyScript and its WASI shim, from npm.
. "$(dirname "$0")/common.sh"
command -v npm >/dev/null || apt_install nodejs npm
dir="$TOOLCHAINS/assemblyscript"
want="assemblyscript@0.28.20 @assemblyscript/wasi-shim@0.1.0"
mkdir -p "$dir"
if [ "$(cat "$dir/.unifaas-deps" 2>/dev/null)" != "$want" ]; then
  echo "toolchain: npm install $want into $dir"
  (cd "$dir" && [ -f package.json ] || echo '{"private": true, "type": "module"}' > package.json)
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error $want >/dev/null)
  echo "$want" > "$dir/.unifaas-deps"
fi
