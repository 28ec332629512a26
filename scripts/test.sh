#!/usr/bin/env bash
# `make test`: every test layer, in order; runs them all and fails if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0; failed=0; failures=()
layer() {
  local name=$1; shift
  echo; echo "=== $name ==="
  if make --no-print-directory "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); failures+=("$name")
  fi
}
layer "host unit tests (cargo test)" test-unit
layer "format and lint (cargo fmt, clippy -D warnings)" test-lint
layer "tracker in headless Chromium (wasm-bindgen-test)" test-browser
layer "tracker size budget (15 KB brotli) and npm types (tsc)" test-size test-types
layer "end to end (wrangler dev + Chromium)" test-e2e
layer "npm package built by Vite, webpack and esbuild (Chromium)" test-bundlers
layer "deployment dry run (wrangler deploy --dry-run)" deploy-check
echo
[ "$failed" -eq 0 ] || echo "failed layers: ${failures[*]}"
echo "test layers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
