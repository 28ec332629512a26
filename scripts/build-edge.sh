#!/usr/bin/env bash
# Builds the Worker with worker-build into edge/build/.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT/edge"
worker-build --release 2>&1 | grep -v '^\[INFO\]' || true
test -s build/index.js && test -s build/index_bg.wasm
