#!/usr/bin/env bash
# Builds the tracker: Rust → Wasm → wasm-bindgen glue → wasm-opt -Oz, and the loader, into www/.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
cargo build --quiet -p cdp-tracker --release --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir tracker/pkg --out-name tracker \
  target/wasm32-unknown-unknown/release/cdp_tracker.wasm
mkdir -p www/cdp
wasm-opt -Oz --strip-debug --strip-producers tracker/pkg/tracker_bg.wasm -o www/cdp/tracker_bg.wasm
esbuild --log-level=warning --minify --format=esm tracker/pkg/tracker.js --outfile=www/cdp/tracker.js
esbuild --log-level=warning --minify tracker/js/cdp.js --outfile=www/cdp.js
