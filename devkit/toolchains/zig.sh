#!/usr/bin/env bash
# Zig from PyPI (the ziglang package bundles the compiler), in a venv of its own.
. "$(dirname "$0")/common.sh"
venv="$TOOLCHAINS/zig/venv"
want="ziglang==0.17.1"
if [ "$(cat "$venv/.unifaas-deps" 2>/dev/null)" != "$want" ]; then
  echo "toolchain: pip install $want into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$want"
  echo "$want" > "$venv/.unifaas-deps"
fi
