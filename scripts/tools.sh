# Sourced by the Makefile's recipes and the test runners: where the build tools live.
# worker-build must not download its own wasm-bindgen, wasm-opt or esbuild, so point it at ours.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
export WRANGLER_SEND_METRICS=false
# wrangler dev would fetch Cloudflare's request data (cf.json) on every start, which fails
# offline with "getaddrinfo ENOTFOUND"; the Worker ignores request.cf locally anyway.
export CLOUDFLARE_CF_FETCH_ENABLED=false
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
