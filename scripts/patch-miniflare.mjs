// Mends a bug in the local queue broker of miniflare (what `wrangler dev` runs queues on)
// that loses accepted messages under load. Run by scripts/setup.sh after every install;
// idempotent, and it fails with a clear message when the file no longer looks as expected.
//
// The bug: after the broker hands a batch to the consumer, it logs the outcome
// ("QUEUE cdp-events 100/100") through a loopback fetch to wrangler's Node process. Under load
// that fetch can fail ("Network connection lost"); the exception leaves the broker's flush
// before it clears its pending-flush marker, so no flush is ever scheduled again until a
// full batch (100 messages) has piled up. The messages behind it stay in the broker's memory,
// never delivered, and are gone when wrangler stops. Measured here, under the load of
// `make bench-collector`'s pipeline row at batch 20: 160–640 events lost in 5 of 6 runs,
// with `queue.metrics()` showing them still in the backlog minutes later and no consumer
// invocation in flight. Cloudflare's own queues do not run this code.
//
// The mend: a log line that cannot be written is reported on the console and the flush goes
// on (its retries, dead letters and next flush), as logging should never decide delivery.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MARK = 'edge-cdp: a log line that fails must not stop the flush';
const ANCHOR = 'var QueueBrokerObject = class extends MiniflareDurableObject {\n';
const MEND = `${ANCHOR}  // ${MARK} (scripts/patch-miniflare.mjs)
  async logWithLevel(level, message) {
    try {
      await super.logWithLevel(level, message);
    } catch (e) {
      console.error(\`queue \${this.name}: a log line was lost (\${e}); delivery goes on\`);
    }
  }
`;

/** The broker's file in the installed miniflare (wrangler's own copy when it has one). */
export function brokerFile() {
  const require = createRequire(join(ROOT, 'node_modules', 'wrangler', 'package.json'));
  const pkg = require.resolve('miniflare/package.json');
  return join(dirname(pkg), 'dist', 'src', 'workers', 'queues', 'broker.worker.js');
}

/** Whether the installed broker carries the mend. */
export function mended() {
  return readFileSync(brokerFile(), 'utf8').includes(MARK);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = brokerFile();
  const text = readFileSync(file, 'utf8');
  if (text.includes(MARK)) process.exit(0);
  if (text.split(ANCHOR).length !== 2 || !text.includes('await this.logWithLevel(')) {
    console.error(`setup: ${file} no longer looks as scripts/patch-miniflare.mjs expects ` +
      '(miniflare was upgraded?). Check whether its queue broker still loses messages when a log ' +
      'line fails (see the comment in that script), then update or remove the mend.');
    process.exit(1);
  }
  writeFileSync(file, text.replace(ANCHOR, MEND));
  console.log('setup: mended miniflare\'s local queue broker (a failed log line stalled it; see scripts/patch-miniflare.mjs)');
}
