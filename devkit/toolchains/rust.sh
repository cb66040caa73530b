#!/usr/bin/env bash
# Rust for wasm32-wasi: Debian's rustc and cargo (1.63) with the wasm32 standard library.
. "$(dirname "$0")/common.sh"
apt_install rustc cargo libstd-rust-dev-wasm32
