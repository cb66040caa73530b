#!/usr/bin/env bash
# JavaScript functions as wasi:http components: componentize-js (StarlingMonkey) and jco's
# WASI WIT, from npm, with the wasi:http version the engine exports its handler at.
. "$(dirname "$0")/common.sh"
dir="$TOOLCHAINS/js"
if npm_install "$dir" @bytecodealliance/componentize-js@0.23.0 @bytecodealliance/jco@1.35.0; then
  rm -rf "$dir/wit"  # made again from the new packages
fi
if [ ! -f "$dir/wit/package.wit" ]; then
  modules="$dir/node_modules/@bytecodealliance"
  source="$modules/jco/lib/wit/builtin/0.2.12"
  version=$(grep -aoE 'wasi:http/incoming-handler@0\.2\.[0-9]+' \
    "$modules/componentize-js/lib/starlingmonkey_embedding.wasm" | head -1 | cut -d@ -f2)
  rm -rf "$dir/wit.new" && mkdir -p "$dir/wit.new/deps"
  sed "s/wasi:http@0.2.12/wasi:http@$version/" "$source/wasi-http/package.wit" > "$dir/wit.new/package.wit"
  for package in cli clocks filesystem io random sockets; do
    cp -r "$source/wasi-$package" "$dir/wit.new/deps/$package"
  done
  rm -rf "$dir/wit" && mv "$dir/wit.new" "$dir/wit"
fi
