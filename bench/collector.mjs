// `make bench-collector`: load on the collector running locally in workerd (`wrangler dev`),
// at batch sizes 1, 20 and 100, and the same load on an empty Worker in the same run; prints
// requests and events per second, latency percentiles, the ratio to the empty Worker, and
// the Worker's Wasm size. The pipeline rows also print how fast the events reached their
// profiles (from the load's start until nothing is pending); `pipeline+catalog` runs with a
// product catalog, so every event is enriched from it. A benchmark, not a test: it prints
// figures and asserts nothing.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ADMIN_TOKEN, ROOT, WRITE_KEY, startWorker } from '../tests/e2e/harness.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 8);
const AUTH = `Basic ${btoa(`${WRITE_KEY}:`)}`;
let counter = 0;

function batchBody(size) {
  const now = new Date().toISOString();
  const batch = Array.from({ length: size }, () => {
    const n = counter++;
    return { type: 'track', event: 'Product Viewed', anonymousId: `bench-${n % 500}`, messageId: `bench-${process.pid}-${n}`,
      timestamp: now, properties: { product_id: `p-${n % 50}`, price: 19.99, currency: 'EUR' },
      context: { page: { url: 'https://shop.example/p', referrer: 'https://www.google.com/' }, library: { name: 'bench', version: '1' },
        userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36' } };
  });
  return JSON.stringify({ batch, sentAt: now });
}

async function load(url, size, seconds = SECONDS) {
  const latencies = [];
  let errors = 0;
  let accepted = 0;
  const end = Date.now() + seconds * 1000;
  const client = async () => {
    while (Date.now() < end) {
      const body = batchBody(size);
      const t0 = performance.now();
      try {
        const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: AUTH }, body });
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
        else accepted += size;
      } catch { errors++; }
      latencies.push(performance.now() - t0);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  return { rps: latencies.length / elapsed, eps: (latencies.length * size) / elapsed, p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), errors, accepted };
}

/** The load (`seconds` long), then the wait until every accepted event is handled: events
 * reaching their profiles per second over the whole time. */
async function delivered(url, size, seconds = SECONDS) {
  const before = (await settled(url)) ?? {};
  const start = performance.now();
  const r = await load(url, size, seconds);
  // The collector's counters travel with the events and are added as the consumer takes
  // them, so `pending` is 0 while events still wait in the queue: the wait is over once
  // every event the load got a 200 for is counted as accepted, and none is pending.
  const deadline = Date.now() + 300_000;
  const done = (c) => c && (c.accepted ?? 0) - (before.accepted ?? 0) >= r.accepted && !(c.pending > 0);
  let after = await settled(url);
  while (!done(after) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    after = await settled(url);
  }
  const elapsed = (performance.now() - start) / 1000;
  const handled = (after?.delivered ?? 0) - (before.delivered ?? 0);
  return { ...r, delivered: done(after) ? handled / elapsed : NaN };
}

/** The counters, or `null` when the Worker does not answer within 30 s (it stalls locally
 * under the heaviest loads; the wait goes on rather than the benchmark ending). */
async function settled(url) {
  try {
    const res = await fetch(`${url}/v1/stats`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(30_000) });
    return await res.json();
  } catch {
    return null;
  }
}

/** A catalog of the products the load names (p-0 … p-49), so each event gains fields. */
async function catalog(url) {
  const rows = Array.from({ length: 50 }, (_, i) => JSON.stringify({ id: `p-${i}`, name: `Product ${i}`, brand: 'Acme',
    category: ['Camping', i % 2 ? 'Cooking' : 'Light'] })).join('\n');
  const res = await fetch(`${url}/v1/catalog/products`, { method: 'PUT', body: rows,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/x-ndjson' } });
  if (res.status !== 200) throw new Error(`catalog upload: ${res.status} ${await res.text()}`);
}

/**
 * A pipeline row: a Worker of its own, started for it (with the catalog, if asked), warmed
 * up by a one-second load it delivers, measured, and stopped. A Worker left running after its row
 * keeps working (alarms, folds) on the same two cores: it once made whichever row came
 * second look twice as slow, which passed for the catalog's cost.
 */
async function pipelineRow(size, withCatalog) {
  const worker = await startWorker();
  try {
    if (withCatalog) await catalog(worker.url);
    await delivered(worker.url, size, 1); // compiles the Wasm and creates objects
    const r = await delivered(worker.url, size);
    const logged = worker.output().split('\n').filter((l) => /error|failed/i.test(l));
    return { ...r, logged };
  } catch (e) {
    console.error(`pipeline row at batch ${size}: ${e.message}; the Worker's last output:\n${worker.output().slice(-2000)}`);
    throw e;
  } finally {
    await worker.stop();
  }
}

// The collector alone: the same Worker with the queue's consumer left out. Locally every
// Durable Object and the consumer share one workerd thread with the collector, which is not
// how Cloudflare runs them, so the full pipeline is measured separately below.
const collectorOnly = join(ROOT, '.wrangler-collector-only.toml');
writeFileSync(collectorOnly, readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')
  .replace(/\[\[queues\.consumers\]\][^[]*/g, ''));

/** The collector row: a collector-only Worker of its own, warmed up, measured and stopped
 * (its queue, never consumed, fills up and should not weigh on the rows after it). */
async function collectorRow(size) {
  const worker = await startWorker({ config: collectorOnly });
  try {
    await load(worker.url, size, 1); // the first requests compile Wasm and create objects
    return await load(worker.url, size);
  } finally {
    await worker.stop();
  }
}

const empty = await startWorker({ config: join(ROOT, 'bench', 'empty-worker', 'wrangler.toml') });
const logged = [];
try {
  const wasm = readFileSync(join(ROOT, 'edge', 'build', 'index_bg.wasm'));
  console.log(`collector Worker Wasm: ${(wasm.length / 1024).toFixed(0)} KB raw, ${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KB gzip`);
  console.log(`load: ${CONCURRENCY} concurrent clients, ${SECONDS} s per run, loopback, wrangler dev (workerd), 2 cores shared with the client\n`);
  console.log('collector: the Worker with the queue consumer left out; pipeline: the same load while the consumer');
  console.log('delivers to identities, profiles, the directory, R2 and counters in the same workerd thread, each');
  console.log('collector and pipeline row on a fresh Worker of its own, warmed up first, and stopped after it\n');
  console.log('delivered/s: events that reached their profiles per second, from the load\'s start until every event');
  console.log('accepted is counted and none is pending ("not settled": not within 5 minutes)\n');
  console.log('batch  target             req/s   events/s   p50 ms   p95 ms   p99 ms  errors   vs empty  delivered/s');
  for (const size of (process.env.BENCH_SIZES || '1,20,100').split(',').map(Number)) {
    await load(empty.url, size, 1);
    const base = await load(empty.url, size);
    const ours = await collectorRow(size);
    const full = await pipelineRow(size, false);
    const withCatalog = await pipelineRow(size, true);
    for (const [name, r] of [['pipeline', full], ['pipeline+catalog', withCatalog]]) {
      if (r.logged.length) logged.push(`${name} at batch ${size} logged ${r.logged.length} error lines (of its last megabyte), e.g.: ${r.logged[0].slice(0, 300)}`);
    }
    for (const [name, r] of [['empty', base], ['collector', ours], ['pipeline', full], ['pipeline+catalog', withCatalog]]) {
      const ratio = name === 'empty' ? '' : `${((r.rps / base.rps) * 100).toFixed(0)} %`;
      const handled = r.delivered === undefined ? '' : Number.isNaN(r.delivered) ? 'not settled' : r.delivered.toFixed(0);
      console.log(`${String(size).padStart(5)}  ${name.padEnd(17)} ${r.rps.toFixed(0).padStart(7)} ${r.eps.toFixed(0).padStart(10)} ${r.p50.toFixed(1).padStart(8)} ${r.p95.toFixed(1).padStart(8)} ${r.p99.toFixed(1).padStart(8)} ${String(r.errors).padStart(7)} ${ratio.padStart(10)} ${handled.padStart(12)}`);
    }
  }
  for (const line of logged) console.log(`\n${line}`);
} finally {
  rmSync(collectorOnly, { force: true });
  await empty.stop();
}
