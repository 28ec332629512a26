#!/usr/bin/env bash
# Builds the tracker: Rust → Wasm → wasm-bindgen glue → wasm-opt -Oz, then
#  - the script-tag build into www/ (loader and glue www/cdp.js, Wasm www/cdp/), minified;
#  - the npm package files into tracker/npm/ (ESM, not minified: the app's bundler does that);
#  - the single-page-app demo, which uses the npm package, into www/spa/.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
# The standard library is rebuilt with panics that abort at once: no panic messages, no
# core::fmt, no locations in the page's Wasm (about 3 KB brotli). Those are nightly
# options of the stable compiler, hence RUSTC_BOOTSTRAP, and they need the rust-src
# component. A target directory of its own keeps these flags from invalidating the
# workspace's ordinary builds and tests. scripts/setup.sh installs rust-src; where it is
# missing, the tracker is built with the prebuilt std instead: larger, but it works the same.
# Without reference types, wasm-bindgen keeps the page's values in an array in the glue and
# the Wasm passes plain indices: no externref table and no shim per exported method in the
# Wasm (about 470 B brotli less in all, and Wasm that older browsers also run).
if rustup component list --installed | grep -q '^rust-src'; then
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none -Ctarget-feature=-reference-types,-multivalue" \
    cargo build --quiet -p cdp-tracker --release --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort --target-dir target/tracker-min
  wasm=target/tracker-min/wasm32-unknown-unknown/release/cdp_tracker.wasm
else
  echo "build-tracker: no rust-src component (scripts/setup.sh installs it); building with the prebuilt std (about 3 KB brotli more)" >&2
  cargo build --quiet -p cdp-tracker --release --target wasm32-unknown-unknown
  wasm=target/wasm32-unknown-unknown/release/cdp_tracker.wasm
fi
rm -rf tracker/pkg
wasm-bindgen --target web --no-typescript --out-dir tracker/pkg --out-name tracker "$wasm"
# Import and export names shortened in the Wasm and then in the glue (see the script).
# (The Wasm's memory is its own, so zero-filled at start, and Rust's stack, first in memory,
# never reaches its lowest kilobyte: two facts wasm-opt may use.)
wasm-opt --low-memory-unused --zero-filled-memory -Oz -Oz --strip-debug --strip-producers --strip-target-features --minify-imports-and-exports-and-modules \
  tracker/pkg/tracker_bg.wasm -o tracker/pkg/tracker_bg.opt.wasm > tracker/pkg/names.json
node tracker/tools/shorten-names.mjs tracker/pkg/names.json tracker/pkg/tracker.js

# (wasm-bindgen's glue repeats an import key when one snippet serves several imports: harmless.)
# The script tag's two files: the loader with the glue bundled in (one script before the
# Wasm, not two in a row; the glue's default Wasm path, the one use of import.meta, is never
# taken) and the Wasm.
mkdir -p www/cdp www/spa
rm -f www/cdp/tracker.js
cp tracker/pkg/tracker_bg.opt.wasm www/cdp/tracker_bg.wasm
esbuild --log-level=warning --log-override:duplicate-object-key=silent --log-override:empty-import-meta=silent \
  --bundle --minify --format=iife --target=es2017 tracker/js/cdp.js --outfile=www/cdp.js

cp tracker/pkg/tracker_bg.opt.wasm tracker/npm/tracker_bg.wasm
cp tracker/js/api.js tracker/npm/api.js
esbuild --log-level=warning --log-override:duplicate-object-key=silent --bundle --format=esm --target=es2020 \
  tracker/pkg/tracker.js --outfile=tracker/npm/tracker.js

esbuild --log-level=warning --log-override:duplicate-object-key=silent --bundle --minify --format=esm --target=es2022 \
  --alias:@edge-cdp/tracker=./tracker/npm/index.js \
  demo/spa/main.js --outfile=www/spa/app.js
cp tracker/pkg/tracker_bg.opt.wasm www/spa/tracker_bg.wasm
