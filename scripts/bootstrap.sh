#!/usr/bin/env bash
# Install what unifaas needs on a Debian 12 machine; safe to run again (does nothing when done).
set -euo pipefail
cd "$(dirname "$0")/.."

# qemu-system-x86: the hypervisor; linux-source-6.1 + flex/bison/libelf-dev/bc/make/gcc:
# the tiny guest kernel is built from Debian's kernel source (lz4-compressed);
# binutils: strip for the image;
# redis-server: the platform's state store; cpio: to inspect images by hand;
# clang + lld + wasi-libc + libclang-rt-14-dev-wasm32 (compiler-rt builtins for
# wasm32): the C example functions (functions/build.py, `make functions`).
APT_PACKAGES=(qemu-system-x86 linux-source-6.1 flex bison libelf-dev libssl-dev bc make gcc
              libc6-dev binutils xz-utils lz4 redis-server cpio curl
              clang lld wasi-libc libclang-rt-14-dev-wasm32 chromium)

bash scripts/apt-install.sh bootstrap "${APT_PACKAGES[@]}"

# The VM user and its id range (also run inside the container image).
bash scripts/vm-user.sh

PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.unifaas-deps
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python dependencies"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
fi

# Spin's Python SDK 3.x builds with componentize-py 0.17 (the SDK's bindings predate later
# releases), so its apps (functions/counter-spin) build in a venv of their own.
spin=.venv-spin
want=$(printf '%s\n' "componentize-py==0.17.2" "spin-sdk==3.4.1")
if [ "$(cat "$spin/.unifaas-deps" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: creating $spin (Spin's Python SDK and its componentize-py)"
  "$PYTHON" -m venv "$spin"
  "$spin/bin/pip" install -q --disable-pip-version-check $want
  echo "$want" > "$spin/.unifaas-deps"
fi

# The JavaScript functions' packages (componentize-js, jco), from the npm registry, each
# in its own node_modules as its package-lock.json pins them; Node.js from Debian when the
# machine has none.
if ! command -v npm >/dev/null 2>&1; then
  echo "bootstrap: installing nodejs npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
for app in functions/*/package.json; do
  dir=$(dirname "$app")
  want=$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$dir/node_modules/.unifaas-deps" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: npm packages of $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" > "$dir/node_modules/.unifaas-deps"
  fi
done
