#!/usr/bin/env bash
# AssemblyScript and its WASI shim, from npm.
. "$(dirname "$0")/common.sh"
npm_install "$TOOLCHAINS/assemblyscript" assemblyscript@0.28.20 @assemblyscript/wasi-shim@0.1.0 || true
