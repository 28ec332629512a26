#!/usr/bin/env bash
# The tracker's wasm-bindgen tests in headless Chromium, through chromedriver.
# Chromium gets a fresh profile directory each run, and whatever Chromium this run started
# is stopped at the end, pass or fail.
#
# About one start in five, Chromium never finishes loading wasm-bindgen-test-runner's page
# (the runner prints nothing after "Ok", before any test code runs; chromedriver later
# reports "Timed out receiving message from renderer"). So a start that has not finished in
# 60 s is stopped and tried again, up to five times (stalls sometimes come in runs); a test
# that fails is never retried.
set -uo pipefail
source "$(dirname "$0")/tools.sh"
profiles=()
cleanup() {
  for p in "${profiles[@]}"; do pkill -9 -f -- "--user-data-dir=$p" 2>/dev/null; rm -rf "$p"; done
}
trap cleanup EXIT

# A new profile directory for each attempt: a Chromium stopped mid-start can leave its
# profile locked, and a second Chromium on the same profile would wait on it too.
write_webdriver_json() {
  local profile
  profile=$(mktemp -d /tmp/cdp-wasm-test-XXXXXX)
  profiles+=("$profile")
  cat > "$ROOT/tracker/webdriver.json" <<JSON
{
  "goog:chromeOptions": {
    "binary": "$CHROMIUM",
    "args": [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-extensions",
      "--user-data-dir=$profile"
    ]
  }
}
JSON
}

cd "$ROOT/tracker"
cargo test --no-run --quiet --target wasm32-unknown-unknown
for attempt in 1 2 3 4 5; do
  write_webdriver_json
  timeout --kill-after=5 60 cargo test --target wasm32-unknown-unknown
  status=$?
  [ "$status" -ne 124 ] && [ "$status" -ne 137 ] && exit "$status"
  echo "test-browser: Chromium did not load the test page within 60 s (attempt $attempt of 5)"
  cleanup
  # Stop the stalled runner and the chromedriver it started (its child), nothing else.
  for runner in $(pgrep -f "wasm-bindgen-test-runner $ROOT/target" || true); do
    pkill -9 -P "$runner" 2>/dev/null
    kill -9 "$runner" 2>/dev/null
  done
done
exit 1
