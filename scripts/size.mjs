// `make size`: raw, gzip and brotli bytes of everything a page loads for our tracker (loader,
// glue, Wasm), and of the peers' published browser builds, measured the same way in one run.
// A benchmark, not a test: it prints figures and asserts nothing.
import { existsSync, readFileSync } from 'node:fs';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const peers = join(root, 'bench', 'peers', 'node_modules');
const BUDGET_BROTLI = 15 * 1024;

const measure = (file) => {
  const buf = readFileSync(file);
  return [buf.length, gzipSync(buf, { level: 9 }).length,
    brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length];
};
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const row = (name, [raw, gz, br]) => console.log(`${name.padEnd(44)}${kb(raw).padStart(10)}${kb(gz).padStart(10)}${kb(br).padStart(10)}`);
const header = (title) => console.log(`\n${title.padEnd(44)}${'raw'.padStart(10)}${'gzip'.padStart(10)}${'brotli'.padStart(10)}`);

header('edge-cdp tracker (what a page loads)');
const ours = ['www/cdp.js', 'www/cdp/tracker_bg.wasm'].map((f) => [f, measure(join(root, f))]);
for (const [f, sizes] of ours) row(`  ${f}`, sizes);
const total = [0, 1, 2].map((i) => ours.reduce((sum, [, s]) => sum + s[i], 0));
row('  total', total);
console.log(`  budget: ${kb(BUDGET_BROTLI)} brotli — ${total[2] <= BUDGET_BROTLI ? 'within' : `over by ${kb(total[2] - BUDGET_BROTLI)}`}`);

const PEERS = [
  ['Segment analytics-next (standalone)', '@segment/analytics-next/dist/umd/standalone.js'],
  ['RudderStack analytics-js v3 (umd)', '@rudderstack/analytics-js/dist/npm/modern/umd/index.js'],
  ['Jitsu (@jitsu/js web)', '@jitsu/js/dist/web/p.js.txt'],
  ['Snowplow browser-tracker (umd.min)', '@snowplow/browser-tracker/dist/index.umd.min.js'],
  ['PostHog posthog-js (array.js)', 'posthog-js/dist/array.js'],
];
header('peers (their npm builds, main script only)');
for (const [name, file] of PEERS) {
  const path = join(peers, file);
  if (!existsSync(path)) { console.log(`  ${name}: not installed (run make size)`); continue; }
  const sizes = measure(path);
  row(`  ${name}`, sizes);
}

// The dashboard: everything its first page loads (goal: under 100 KB gzip).
header('dashboard (www/dashboard/)');
const dashboard = ['www/dashboard/index.html', 'www/dashboard/app.js', 'www/dashboard/app.css']
  .filter((f) => existsSync(join(root, f))).map((f) => [f, measure(join(root, f))]);
for (const [f, sizes] of dashboard) row(`  ${f}`, sizes);
row('  total', [0, 1, 2].map((i) => dashboard.reduce((sum, [, s]) => sum + s[i], 0)));
