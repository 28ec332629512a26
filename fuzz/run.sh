#!/usr/bin/env bash
# Fuzzes the batch parser (decode + check_batch) for N seconds, default 60:
#   fuzz/run.sh [SECONDS] [extra libFuzzer flags...]
# A crash stops the run with a non-zero exit; the input is saved in fuzz/artifacts/batch/
# and replays with `RUSTC_BOOTSTRAP=1 cargo fuzz run batch fuzz/artifacts/batch/<file>`.
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/.."

# cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=address and friends), and this
# project builds with the stable toolchain only. RUSTC_BOOTSTRAP=1 lets a stable rustc and
# cargo accept unstable flags; it is scoped to this script, so normal builds stay stable.
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz --version "${CARGO_FUZZ_VERSION:-0.13.2}"
fi

# nice: the machine has 2 cores shared with other builds. Seeds are fuzz/corpus/batch/seed-*.json;
# what the fuzzer finds is added beside them (git-ignored) and reused by the next run.
exec nice -n 10 cargo fuzz run batch -- \
    -max_total_time="$seconds" \
    -dict=fuzz/batch.dict \
    -print_final_stats=1 \
    "$@"
