#!/usr/bin/env bash
# `make deploy` (and `make deploy-check`, its dry run, which `make test` runs): builds the
# Worker and the tracker and deploys them with wrangler. What is published as static files
# is what a site needs from the collector (the loader, the tracker, their CORS headers)
# and the dashboard: the demo shop and the SPA demo stay local unless PUBLISH_DEMO=1.
#   scripts/deploy.sh [--dry-run]
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
make --no-print-directory build
public=build/public
rm -rf "$public"
if [ "${PUBLISH_DEMO:-0}" = 1 ]; then
  mkdir -p build && cp -R www "$public"
else
  mkdir -p "$public"
  cp -R www/cdp.js www/cdp www/dashboard www/_headers "$public/"
fi
if [ "${1:-}" = "--dry-run" ]; then
  # Offline and without an account: wrangler bundles and checks the configuration and the
  # bindings, and uploads nothing.
  wrangler deploy --dry-run --assets "$public" --outdir build/deploy
else
  wrangler deploy --assets "$public"
fi
