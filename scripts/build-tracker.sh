#!/usr/bin/env bash
# Builds the tracker: Rust → Wasm → wasm-bindgen glue → wasm-opt -Oz, then
#  - the script-tag build into www/ (loader www/cdp.js, tracker www/cdp/), minified;
#  - the npm package files into tracker/npm/ (ESM, not minified: the app's bundler does that);
#  - the single-page-app demo, which uses the npm package, into www/spa/.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
# The standard library is rebuilt with panics that abort at once: no panic messages, no
# core::fmt in the page (2.6 KB brotli). `panic = "immediate-abort"` and `-Zbuild-std` are
# not stable yet; RUSTC_BOOTSTRAP lets this stable toolchain use them for this one build.
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" \
  cargo build --quiet -p cdp-tracker --release --target wasm32-unknown-unknown \
  -Zbuild-std=std,panic_abort --target-dir target/tracker
rm -rf tracker/pkg
wasm-bindgen --target web --no-typescript --out-dir tracker/pkg --out-name tracker \
  target/tracker/wasm32-unknown-unknown/release/cdp_tracker.wasm
wasm-opt -Oz --strip-debug --strip-producers tracker/pkg/tracker_bg.wasm -o tracker/pkg/tracker_bg.opt.wasm

# (wasm-bindgen's glue repeats an import key when one snippet serves several imports: harmless.)
mkdir -p www/cdp www/spa
cp tracker/pkg/tracker_bg.opt.wasm www/cdp/tracker_bg.wasm
esbuild --log-level=warning --log-override:duplicate-object-key=silent --bundle --minify --format=esm --target=es2017 \
  tracker/pkg/tracker.js --outfile=www/cdp/tracker.js
esbuild --log-level=warning --log-override:duplicate-object-key=silent --bundle --minify --format=iife --target=es2017 \
  tracker/js/cdp.js --outfile=www/cdp.js

cp tracker/pkg/tracker_bg.opt.wasm tracker/npm/tracker_bg.wasm
cp tracker/js/api.js tracker/npm/api.js
esbuild --log-level=warning --log-override:duplicate-object-key=silent --bundle --format=esm --target=es2020 \
  tracker/pkg/tracker.js --outfile=tracker/npm/tracker.js

esbuild --log-level=warning --log-override:duplicate-object-key=silent --bundle --minify --format=esm --target=es2022 \
  --alias:@edge-cdp/tracker=./tracker/npm/index.js \
  demo/spa/main.js --outfile=www/spa/app.js
cp tracker/pkg/tracker_bg.opt.wasm www/spa/tracker_bg.wasm
