// `make bench-collector`: load on the collector running locally in workerd (`wrangler dev`),
// at batch sizes 1, 20 and 100, and the same load on an empty Worker in the same run; prints
// requests and events per second, latency percentiles, the ratio to the empty Worker, and
// the Worker's Wasm size. A benchmark, not a test: it prints figures and asserts nothing.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ROOT, WRITE_KEY, startWorker } from '../tests/e2e/harness.mjs';

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

async function load(url, size) {
  const latencies = [];
  let errors = 0;
  const end = Date.now() + SECONDS * 1000;
  const client = async () => {
    while (Date.now() < end) {
      const body = batchBody(size);
      const t0 = performance.now();
      try {
        const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: AUTH }, body });
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
      } catch { errors++; }
      latencies.push(performance.now() - t0);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  return { rps: latencies.length / elapsed, eps: (latencies.length * size) / elapsed, p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), errors };
}

// The collector alone: the same Worker with the queue's consumer left out. Locally every
// Durable Object and the consumer share one workerd thread with the collector, which is not
// how Cloudflare runs them, so the full pipeline is measured separately below.
const collectorOnly = join(ROOT, '.wrangler-collector-only.toml');
writeFileSync(collectorOnly, readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')
  .replace(/\[\[queues\.consumers\]\][^[]*/g, ''));
const collector = await startWorker({ config: collectorOnly });
const pipeline = await startWorker();
const empty = await startWorker({ config: join(ROOT, 'bench', 'empty-worker', 'wrangler.toml') });
try {
  const wasm = readFileSync(join(ROOT, 'edge', 'build', 'index_bg.wasm'));
  console.log(`collector Worker Wasm: ${(wasm.length / 1024).toFixed(0)} KB raw, ${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KB gzip`);
  console.log(`load: ${CONCURRENCY} concurrent clients, ${SECONDS} s per run, loopback, wrangler dev (workerd), 2 cores shared with the client\n`);
  console.log('collector: the Worker with the queue consumer left out; pipeline: the same load while the consumer');
  console.log('delivers to dedup shards, profiles, R2 and counters in the same workerd thread\n');
  console.log('batch  target     req/s   events/s   p50 ms   p95 ms   p99 ms  errors   vs empty');
  for (const size of [1, 20, 100]) {
    await load(collector.url, size); // warm-up: the first requests compile Wasm and create objects
    const base = await load(empty.url, size);
    const ours = await load(collector.url, size);
    const full = await load(pipeline.url, size);
    for (const [name, r] of [['empty', base], ['collector', ours], ['pipeline', full]]) {
      const ratio = name === 'empty' ? '' : `${((r.rps / base.rps) * 100).toFixed(0)} %`;
      console.log(`${String(size).padStart(5)}  ${name.padEnd(9)} ${r.rps.toFixed(0).padStart(7)} ${r.eps.toFixed(0).padStart(10)} ${r.p50.toFixed(1).padStart(8)} ${r.p95.toFixed(1).padStart(8)} ${r.p99.toFixed(1).padStart(8)} ${String(r.errors).padStart(7)} ${ratio.padStart(10)}`);
    }
  }
} finally {
  await pipeline.stop();
  rmSync(collectorOnly, { force: true });
  await collector.stop();
  await empty.stop();
}
