// `make test-size`: a test, not a benchmark. Fails when what a page loads for the tracker
// (loader, glue, Wasm) is over its budget of 15 KB brotli (quality 11, as `make size`
// measures it); `make size` prints the breakdown and the peers.
import { readFileSync } from 'node:fs';
import { brotliCompressSync, constants } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUDGET = 15 * 1024;
const FILES = ['www/cdp.js', 'www/cdp/tracker_bg.wasm'];
const brotli = (file) => brotliCompressSync(readFileSync(join(root, file)), {
  params: { [constants.BROTLI_PARAM_QUALITY]: 11 },
}).length;
const sizes = FILES.map((f) => [f, brotli(f)]);
const total = sizes.reduce((sum, [, n]) => sum + n, 0);
const detail = sizes.map(([f, n]) => `${f} ${n} B`).join(', ');
if (total > BUDGET) {
  console.error(`size budget: ${total} B brotli is over the ${BUDGET} B budget by ${total - BUDGET} B (${detail})`);
  process.exit(1);
}
console.log(`size budget: ${total} B brotli, within ${BUDGET} B (margin ${BUDGET - total} B; ${detail})`);
