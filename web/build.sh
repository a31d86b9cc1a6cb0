#!/usr/bin/env bash
# Builds the browser demo into web/pkg: the xltc-web crate for wasm32, then
# wasm-bindgen's JavaScript glue. Needs the wasm32-unknown-unknown target and
# the wasm-bindgen CLI at the version Cargo.lock pins (.ci/run installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --target wasm32-unknown-unknown -p xltc-web
wasm-bindgen --target web --no-typescript --out-dir web/pkg \
  target/wasm32-unknown-unknown/release/xltc_web.wasm
echo "built web/pkg"
