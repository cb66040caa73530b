#!/usr/bin/env bash
# C for wasm32-wasi: Debian's clang and lld, wasi-libc, and the wasm32 compiler-rt builtins.
. "$(dirname "$0")/common.sh"
apt_install clang lld wasi-libc libclang-rt-14-dev-wasm32
