// `make bench-activation`: activation locally in workerd (`wrangler dev`). Prints figures
// and asserts nothing:
//   - membership change → webhook received (the change's `occurredAt`, stamped by the
//     profile in the write that decided it, to the receiver's clock: one machine), p50/p99;
//   - deliveries per second, for a burst of entries;
//   - export rows per second;
//   - the Durable Object, queue and R2 operations per delivered change (the cost model).
import { createServer } from 'node:http';
import { WRITE_KEY, startWorker } from '../tests/e2e/harness.mjs';

const SAMPLES = Number(process.env.BENCH_SAMPLES || 40);
const BURST = Number(process.env.BENCH_BURST || 300);
const AUTH = `Basic ${btoa(`${WRITE_KEY}:`)}`;
const ADMIN = { Authorization: 'Bearer demo-admin-token', 'Content-Type': 'application/json' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs, q) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

const arrivals = [];
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    arrivals.push({ at: Date.now(), body: JSON.parse(body) });
    res.writeHead(204).end();
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));

async function send(url, events) {
  for (let i = 0; i < events.length; i += 50) {
    const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: AUTH },
      body: JSON.stringify({ batch: events.slice(i, i + 50), sentAt: new Date().toISOString() }) });
    await res.arrayBuffer();
  }
}
const call = async (url, method, path, body) => {
  const res = await fetch(`${url}${path}`, { method, headers: ADMIN, body: body && JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
};
let n = 0;
const event = (anonymousId, name) => ({ type: 'track', event: name, anonymousId, messageId: `ba-${++n}`, timestamp: new Date().toISOString() });

const worker = await startWorker();
const url = worker.url;
try {
  await call(url, 'POST', '/v1/audiences', { key: 'probe', group: 'bench', where: { did: { event: 'Probe', within: '1h' } } });
  await call(url, 'POST', '/v1/destinations', { key: 'bench_hook', type: 'webhook', audiences: ['probe'], on: ['entered'],
    settings: { url: `http://127.0.0.1:${receiver.address().port}/hook` } });

  // Change → received, one at a time.
  const latencies = [];
  for (let i = 0; i < SAMPLES; i += 1) {
    const before = arrivals.length;
    await send(url, [event(`lat-${i}`, 'Probe')]);
    while (arrivals.length === before) await sleep(5);
    const got = arrivals[arrivals.length - 1];
    latencies.push(got.at - Date.parse(got.body.occurredAt));
  }

  // A burst of entries.
  const start = arrivals.length;
  const t0 = performance.now();
  await send(url, Array.from({ length: BURST }, (_, i) => event(`burst-${i}`, 'Probe')));
  while (arrivals.length - start < BURST) await sleep(20);
  const burstSeconds = (performance.now() - t0) / 1000;

  // An export of every member (samples + burst).
  await call(url, 'POST', '/v1/exports', { key: 'bench_export', audience: 'probe', format: 'csv',
    fields: ['identifiers.anonymousId'], schedule: '0 0 1 1 *' });
  const t1 = performance.now();
  await call(url, 'POST', '/v1/exports/bench_export/run');
  let run;
  for (;;) {
    run = (await call(url, 'GET', '/v1/exports/bench_export/runs')).body.runs[0];
    if (run?.state === 'done') break;
    await sleep(50);
  }
  const exportSeconds = (performance.now() - t1) / 1000;

  console.log('activation, locally (wrangler dev)');
  console.log(`  membership change → webhook received (${SAMPLES} changes): p50 ${quantile(latencies, 0.5)} ms, p99 ${quantile(latencies, 0.99)} ms`);
  console.log(`  a burst of ${BURST} entries, accepted → all received: ${burstSeconds.toFixed(2)} s, ${(BURST / burstSeconds).toFixed(0)} deliveries/s`);
  console.log(`  export: ${run.rows} rows in ${run.pages} page(s), ${run.bytes} bytes gzip, ${exportSeconds.toFixed(2)} s, ${(run.rows / exportSeconds).toFixed(0)} rows/s`);
  console.log('  operations per delivered change (one destination; B = changes per queue batch):');
  console.log('    Durable Objects: 1 profile read (view) + 3/B registry calls (each consumer reads the destinations once per batch; the log is written once per batch)');
  console.log('    queues: 2 writes + 2 reads (activation, deliveries); the outbox row rides on the change\'s own write');
  console.log('    R2: none (exports: 2 writes + 1 read + 1 delete per page of 200 rows, and 1 write for the file)');
} finally {
  await worker.stop();
  receiver.close();
}
