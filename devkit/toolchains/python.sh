#!/usr/bin/env bash
# Python functions as wasi:http components: componentize-py in a venv of its own, and the
# WASI 0.2.0 WIT that the spin-sdk package ships, arranged for the wasi:http/proxy world
# (http as the root package). spin-sdk stays out of that venv: componentize-py reads the WIT
# of every package on the Python path, and spin-sdk's would be read twice.
. "$(dirname "$0")/common.sh"
dir="$TOOLCHAINS/python"
venv="$dir/venv"
want="componentize-py==0.25.1"
if [ "$(cat "$venv/.unifaas-deps" 2>/dev/null)" != "$want" ]; then
  echo "toolchain: pip install $want into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $want
  echo "$want" > "$venv/.unifaas-deps"
fi
if [ ! -f "$dir/proxy-wit/types.wit" ]; then
  rm -rf "$dir/spin-sdk" "$dir/proxy-wit.new"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --target "$dir/spin-sdk" spin-sdk==3.4.1
  sdk="$dir/spin-sdk/spin_sdk/wit/deps"
  mkdir -p "$dir/proxy-wit.new/deps"
  for package in cli clocks filesystem io random sockets; do cp -r "$sdk/$package" "$dir/proxy-wit.new/deps/"; done
  cp "$sdk"/http/*.wit "$dir/proxy-wit.new/"
  rm -rf "$dir/proxy-wit" "$dir/spin-sdk" && mv "$dir/proxy-wit.new" "$dir/proxy-wit"
fi
