#!/usr/bin/env bash
# `make dev`: builds the tracker and the Worker, then serves everything with `wrangler dev`.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
PORT="${PORT:-8787}"
cat <<TEXT

  Edge CDP, local demo (stop with Ctrl-C)
    demo shop      http://127.0.0.1:$PORT/
    dashboard      http://127.0.0.1:$PORT/dashboard/          token: demo-admin-token
    collector      POST http://127.0.0.1:$PORT/v1/batch      write key: demo-write-key
    admin API      GET  http://127.0.0.1:$PORT/v1/profiles/lookup?anonymousId=…
                   header: Authorization: Bearer demo-admin-token

TEXT
exec wrangler dev --ip 127.0.0.1 --port "$PORT" --log-level warn
