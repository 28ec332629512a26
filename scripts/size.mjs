// Prints the raw, gzip and brotli bytes of everything a page loads for the tracker.
// Run with `make size`. A benchmark, not a test: it prints figures and asserts nothing.
import { readFileSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const www = join(dirname(fileURLToPath(import.meta.url)), '..', 'www');
const files = ['cdp.js', 'cdp/tracker.js', 'cdp/tracker_bg.wasm'];
const sizes = (buf) => [
  buf.length,
  gzipSync(buf, { level: 9 }).length,
  brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
];
const rows = files.map((f) => [f, ...sizes(readFileSync(join(www, f)))]);
rows.push(['total', ...[1, 2, 3].map((i) => rows.reduce((s, r) => s + r[i], 0))]);
const pad = (v, n) => String(v).padStart(n);
console.log(`${'file'.padEnd(22)}${pad('raw', 10)}${pad('gzip', 10)}${pad('brotli', 10)}`);
for (const [name, raw, gz, br] of rows) console.log(`${name.padEnd(22)}${pad(raw, 10)}${pad(gz, 10)}${pad(br, 10)}`);
