// `make bench-cost`: what the pipeline costs per event on Cloudflare, from a realistic web
// workload sent through the real pipeline under `wrangler dev` with metering on
// (`METER=true`, see edge/src/meter.rs): visitors of about 10 events each (pages, product
// views, carts), 5 % of them identify, 2 % buy, sent by browsers in batches of about 5, with
// three audiences defined. It prints, per event, every unit Cloudflare bills as the Worker
// counted it (requests, queue operations, Durable Object requests and alarms, SQLite rows
// read and written from the cursors' own counts, R2 operations), the dollars per million
// events at list prices, itemised, and what keeping the data costs per month.
// A benchmark, not a test: it prints figures and asserts nothing.
import { ADMIN_TOKEN, counters, sendBatch, startWorker } from '../tests/e2e/harness.mjs';

const VISITORS = Number(process.env.BENCH_VISITORS || 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 8);
// Events per request: about 5 from a browser; server-side libraries send 20 and more.
const BATCH = Number(process.env.BENCH_BATCH || 5);

// Cloudflare's list prices (Workers Paid plan, beyond the included amounts), in USD, as
// published on developers.cloudflare.com (Workers, Queues, Durable Objects, R2 pricing).
const PRICES = [
  ['meter.worker_requests', 'Worker requests', 0.30],
  ['meter.queue_writes', 'queue writes', 0.40],
  ['meter.queue_reads', 'queue reads', 0.40],
  ['meter.queue_deletes', 'queue deletes', 0.40],
  ['meter.object_requests', 'Durable Object requests', 0.15],
  ['meter.object_alarms', 'Durable Object alarms', 0.15],
  ['meter.rows_read', 'SQLite rows read', 0.001],
  ['meter.rows_written', 'SQLite rows written', 1.00],
  ['meter.r2_class_a', 'R2 class A (writes, lists)', 4.50],
  ['meter.r2_class_b', 'R2 class B (reads)', 0.36],
];
const SQLITE_GB_MONTH = 0.20;
const R2_GB_MONTH = 0.015;

/** One visitor's events, in order: ~10, some identify, some buy. */
function visit(n) {
  const anonymousId = `cost-${process.pid}-${n}`;
  const events = [];
  let at = Date.now() - 60_000;
  const add = (event) => events.push({ anonymousId, messageId: `${anonymousId}-${events.length}`,
    timestamp: new Date(at += 1000).toISOString(), context: { page: { url: 'https://shop.example/' } }, ...event });
  const product = (i) => ({ product_id: `p-${(n * 7 + i) % 200}`, price: 20 + (i % 5) * 10, category: i % 2 ? 'Cooking' : 'Light' });
  add({ type: 'page', name: 'Home' });
  for (let i = 0; i < 5; i += 1) add({ type: 'track', event: 'Product Viewed', properties: product(i) });
  add({ type: 'page', name: 'Category' });
  add({ type: 'track', event: 'Product Added', properties: { ...product(1), quantity: 1 } });
  add({ type: 'page', name: 'Cart' });
  if (n % 20 === 0) add({ type: 'identify', userId: `user-${process.pid}-${n}`, traits: { email: `u${n}@example.com` } });
  if (n % 50 === 0) add({ type: 'track', event: 'Order Completed', properties: { order_id: `o-${process.pid}-${n}`, revenue: 30, currency: 'EUR', products: [{ ...product(1), quantity: 1 }] } });
  else add({ type: 'track', event: 'Checkout Started', properties: { revenue: 30 } });
  return events;
}

const admin = (url, method, path, body) => fetch(`${url}${path}`, { method,
  headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

const worker = await startWorker({ vars: { METER: 'true' } });
try {
  for (const [key, where] of [
    ['buyers', { did: { event: 'Order Completed' } }],
    ['browsed_not_bought', { all: [{ did: { event: 'Product Viewed', within: '30d' } }, { didNot: { event: 'Order Completed', within: '30d' } }] }],
    ['big_spenders', { have: 'computed.totalRevenue>500' }],
  ]) {
    const res = await admin(worker.url, 'POST', '/v1/audiences', { key, name: key, where });
    if (res.status !== 201) throw new Error(`audience ${key}: ${res.status} ${await res.text()}`);
  }
  // Browsers send their visitors' events in batches of about 5, visitors interleaved
  // (BENCH_BATCH: a visitor's events in batches of that many instead).
  const batches = [];
  for (let n = 0; n < VISITORS; n += 1) {
    const events = visit(n);
    for (let i = 0; i < events.length; i += BATCH) batches.push(events.slice(i, i + BATCH));
  }
  for (let i = batches.length - 1; i > 0; i -= 1) {
    const j = Math.floor(((i * 7919) % 104729) / 104729 * (i + 1));
    [batches[i], batches[j]] = [batches[j], batches[i]];
  }
  const sent = batches.reduce((n, b) => n + b.length, 0);
  const before = await counters(worker.url);
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < batches.length) {
      const batch = batches[next++];
      const res = await sendBatch(worker.url, batch);
      if (res.status !== 200) throw new Error(`batch refused: ${res.status} ${JSON.stringify(res.body)}`);
    }
  }));
  let after = await counters(worker.url);
  const deadline = Date.now() + 600_000;
  while ((after.pending > 0 || (after.accepted ?? 0) - (before.accepted ?? 0) < sent) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    after = await counters(worker.url);
  }
  const seconds = (performance.now() - start) / 1000;
  // A report folds what the directory has not yet added to its rollups (an alarm would a
  // minute later), so the run pays for it; a reading writes what was counted so far, and
  // the next one sees it.
  await fetch(`${worker.url}/v1/reports/overview?range=24h`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  await counters(worker.url);
  after = await counters(worker.url);
  const delivered = (after.delivered ?? 0) - (before.delivered ?? 0);

  // Bytes per profile, from a sample of the profiles' own databases.
  const listed = await (await fetch(`${worker.url}/v1/profiles?limit=50`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json();
  const sizes = [];
  for (const p of listed.profiles ?? []) {
    const res = await fetch(`${worker.url}/v1/profiles/${p.id}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    if (res.ok) sizes.push((await res.json()).storageBytes);
  }
  const bytesPerProfile = sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length);

  console.log(`workload: ${VISITORS} visitors, ${sent} events in ${batches.length} browser batches (${(sent / batches.length).toFixed(1)} a batch), 5 % identify, 2 % buy, 3 audiences`);
  console.log(`pipeline: ${delivered} events delivered, ${after.duplicates ?? 0} duplicates, pending ${after.pending}, in ${seconds.toFixed(1)} s (${(delivered / seconds).toFixed(0)} events/s, wrangler dev, 2 cores)\n`);
  console.log('unit                             per event   $ per million events');
  let total = 0;
  for (const [name, label, price] of PRICES) {
    const perEvent = ((after[name] ?? 0) - (before[name] ?? 0)) / sent;
    const dollars = perEvent * price;
    total += dollars;
    console.log(`${label.padEnd(30)} ${perEvent.toFixed(3).padStart(11)} ${dollars.toFixed(3).padStart(22)}`);
  }
  const byObject = Object.keys(after).filter((k) => k.startsWith('meter.rows_written.'))
    .map((k) => `${k.slice('meter.rows_written.'.length)} ${(((after[k] ?? 0) - (before[k] ?? 0)) / sent).toFixed(2)}`);
  console.log(`  rows written by object class, per event: ${byObject.join(', ')}`);
  console.log(`${'total'.padEnd(30)} ${''.padStart(11)} ${total.toFixed(2).padStart(22)}`);
  console.log('(not counted: Workers CPU time and Durable Object duration, which a local run cannot measure)\n');
  const profilesPerMillion = 1e6 / (sent / VISITORS);
  const archiveBytes = ((after['meter.r2_bytes_stored'] ?? 0) - (before['meter.r2_bytes_stored'] ?? 0)) / sent;
  const profileGb = (bytesPerProfile * profilesPerMillion) / 1e9;
  const archiveGb = (archiveBytes * 1e6) / 1e9;
  console.log(`storage: ${(bytesPerProfile / 1024).toFixed(1)} KB per profile (sample of ${sizes.length}), ${archiveBytes.toFixed(0)} B of archive per event`);
  console.log(`kept a month, a million events' data costs $${(profileGb * SQLITE_GB_MONTH).toFixed(3)} in profiles (${profileGb.toFixed(2)} GB) and $${(archiveGb * R2_GB_MONTH).toFixed(4)} in the archive (${archiveGb.toFixed(2)} GB)`);
} finally {
  await worker.stop();
}
