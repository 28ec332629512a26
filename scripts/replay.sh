#!/usr/bin/env bash
# Re-ingests the archived events received between two times, idempotently (events already
# in their profiles are not added twice).
#   scripts/replay.sh 2026-11-23T00:00:00Z 2026-11-23T05:00:00Z
# Environment: CDP_URL (default http://127.0.0.1:8787), CDP_ADMIN_TOKEN (default the local one).
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 FROM TO   (ISO 8601 times, e.g. 2026-11-23T00:00:00Z)" >&2
  exit 2
fi
url="${CDP_URL:-http://127.0.0.1:8787}"
token="${CDP_ADMIN_TOKEN:-demo-admin-token}"
curl --fail-with-body -sS -X POST -H "Authorization: Bearer $token" \
  "$url/v1/admin/replay?from=$1&to=$2"
echo
