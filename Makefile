# The two commands a new user needs: `make dev` (the demo) and `make test` (every test).
# Both install what they need first (scripts/setup.sh: idempotent, seconds when done).
SHELL := /bin/bash
.DEFAULT_GOAL := help
TOOLS := source scripts/tools.sh

RUST_COMMON := Cargo.toml Cargo.lock $(wildcard protocol/Cargo.toml protocol/src/*.rs protocol/src/*/*.rs)
TRACKER_OUT := www/cdp/tracker_bg.wasm
EDGE_OUT := edge/build/index.js
DASHBOARD_OUT := www/dashboard/app.js

.PHONY: help setup build dev test test-unit test-lint test-browser test-e2e test-bundlers test-size test-types deploy deploy-check size bench-tracker bench-collector bench-store bench-audiences bench-activation bench-reports bench-cost clean

help:
	@echo "make dev    build everything and serve the demo shop on http://127.0.0.1:8787"
	@echo "make test   run every test: host units, lint, tracker in Chromium, end to end"

setup:
	@scripts/setup.sh

# Real file targets, so `wrangler dev` (which runs `make build`) rebuilds only what changed.
build: $(TRACKER_OUT) $(EDGE_OUT) $(DASHBOARD_OUT)

$(TRACKER_OUT): $(RUST_COMMON) $(wildcard tracker/Cargo.toml tracker/src/*.rs tracker/js/*.js tracker/tools/*.mjs) scripts/build-tracker.sh
	@scripts/build-tracker.sh

$(EDGE_OUT): $(RUST_COMMON) $(wildcard edge/Cargo.toml edge/src/*.rs edge/src/*/*.rs) scripts/build-edge.sh
	@scripts/build-edge.sh

# The dashboard: Preact and htm, bundled and minified by the project's esbuild.
$(DASHBOARD_OUT): $(wildcard dashboard/*.js dashboard/*.css) package-lock.json
	@$(TOOLS); esbuild --log-level=warning --bundle --minify --format=esm --target=es2022 \
	  dashboard/main.js --outfile=$(DASHBOARD_OUT)

dev: setup
	@scripts/dev.sh

test: setup
	@scripts/test.sh

test-unit:
	@$(TOOLS); cargo test --workspace --exclude cdp-edge

test-lint:
	@$(TOOLS); cargo fmt --all --check && \
	  cargo clippy --quiet -p cdp-protocol --all-targets -- -D warnings && \
	  cargo clippy --quiet -p cdp-edge -p cdp-tracker --target wasm32-unknown-unknown --all-targets -- -D warnings

test-browser:
	@scripts/test-browser.sh

test-e2e: build
	@$(TOOLS); node --test --test-concurrency=1 tests/e2e/

# The tracker's size budget (15 KB brotli), as a test that fails when the build goes over.
test-size: $(TRACKER_OUT)
	@$(TOOLS); node scripts/size-budget.mjs

# The npm package's types (index.d.ts) checked by the TypeScript compiler against a use of
# the whole API (tracker/npm/types-check.ts).
test-types: $(TRACKER_OUT)
	@$(TOOLS); tsc --noEmit --strict --allowJs --target es2022 --module nodenext --moduleResolution nodenext --lib es2022,dom tracker/npm/types-check.ts

# The npm package built by Vite, webpack and esbuild and loaded in Chromium; the bundlers
# are installed on first use only, like the peers' trackers below.
test-bundlers: $(TRACKER_OUT)
	@$(TOOLS); [ -d tests/bundlers/node_modules ] || npm ci --prefix tests/bundlers --no-audit --no-fund --loglevel=error
	@$(TOOLS); node --test tests/bundlers/

# Deployment (README, Deployment): the real one, and the dry run `make test` checks.
deploy: setup
	@scripts/deploy.sh

deploy-check:
	@scripts/deploy.sh --dry-run

# Benchmarks: they print figures and assert nothing.
size: $(TRACKER_OUT) $(DASHBOARD_OUT)
	@$(TOOLS); [ -d bench/peers/node_modules ] || npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error
	@$(TOOLS); node scripts/size.mjs

bench-tracker: $(TRACKER_OUT)
	@$(TOOLS); [ -d bench/peers/node_modules ] || npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error
	@$(TOOLS); node bench/tracker.mjs

bench-collector: build
	@$(TOOLS); node bench/collector.mjs

bench-store: build
	@$(TOOLS); node bench/store.mjs

bench-audiences: build
	@$(TOOLS); node bench/audiences.mjs

bench-cost: build
	@$(TOOLS); node bench/cost.mjs

bench-reports: build
	@$(TOOLS); node bench/reports.mjs

bench-activation: build
	@$(TOOLS); node bench/activation.mjs

clean:
	rm -rf edge/build tracker/pkg www/cdp www/cdp.js
