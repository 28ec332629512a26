#!/usr/bin/env bash
# Installs everything the demo and the tests need, on a fresh machine of this kind.
# Idempotent: each step checks first, so a second run with nothing to do takes seconds.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
say() { echo "setup: $*"; }
lock_version() { # version of a crate in Cargo.lock
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt clippy
# The tracker's build rebuilds the standard library (see scripts/build-tracker.sh).
rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
bindgen=$(lock_version wasm-bindgen)
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $bindgen" ]; then
  say "installing wasm-bindgen-cli $bindgen (takes a few minutes, once)"
  cargo install --quiet --locked --force wasm-bindgen-cli --version "$bindgen"
fi
# worker-build follows the worker crate's version.
worker=$(lock_version worker)
if [ "$(worker-build --version 2>/dev/null)" != "$worker" ]; then
  say "installing worker-build $worker (takes a few minutes, once)"
  cargo install --quiet --locked --force worker-build --version "$worker"
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (wrangler, binaryen, esbuild, playwright-core, typescript, analytics-next)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Every time, not only after an install: a hand-run `npm ci` brings the unmended file back.
node scripts/patch-miniflare.mjs

[ -f .dev.vars ] || { cp .dev.vars.example .dev.vars; say "wrote .dev.vars with the local demo keys"; }
exit 0
