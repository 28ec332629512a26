// `make bench-reports`: each report's answer time locally in workerd (`wrangler dev`),
// over 10,000 profiles and 200,000 events spread across the last 30 days (set
// BENCH_PROFILES and BENCH_EVENTS_PER_PROFILE to change the size). Prints figures and
// asserts nothing; it also prints whether the reports' totals equal what was sent.
//
// Loading goes through the real pipeline (collector, queue, profiles, directory), so it
// also prints the load rate. Locally every object shares one workerd thread and one
// disk: on Cloudflare the 16 directory partitions answer in parallel.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WRITE_KEY, startWorker } from '../tests/e2e/harness.mjs';

const PROFILES = Number(process.env.BENCH_PROFILES || 10_000);
const PER_PROFILE = Number(process.env.BENCH_EVENTS_PER_PROFILE || 20);
const BATCH = Number(process.env.BENCH_BATCH || 400);
const PARALLEL = Number(process.env.BENCH_PARALLEL || 4);
const RUNS = 5;
const ROUND = 10_000;
const AUTH = `Basic ${btoa(`${WRITE_KEY}:`)}`;
const ADMIN = { Authorization: 'Bearer demo-admin-token' };
const DAY = 86_400_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A deterministic shopper: sessions of page views and product views, some adds, fewer
// checkouts and orders, some visits from campaigns.
let seed = 42;
const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
const pick = (xs) => xs[Math.floor(random() * xs.length)];
const PRODUCTS = Array.from({ length: 200 }, (_, i) => ({ product_id: `p${i}`, category: `c${i % 12}`, price: 5 + (i % 40) }));
const CAMPAIGNS = [null, null, null, 'spring', 'newsletter', 'retarget'];
let n = 0;
let orders = 0;
let revenue = 0;
function shopper(i) {
  const id = `rep-bench-${i}`;
  const events = [];
  let t = Date.now() - 30 * DAY + Math.floor(random() * 25 * DAY);
  let session = 0;
  while (events.length < PER_PROFILE) {
    session += 1;
    const campaign = pick(CAMPAIGNS);
    const url = campaign ? `https://shop.example/?utm_source=ads&utm_medium=cpc&utm_campaign=${campaign}` : 'https://shop.example/';
    const context = { sessionId: i * 100 + session };
    const at = () => new Date((t += 30_000 + Math.floor(random() * 120_000))).toISOString();
    const push = (e) => events.length < PER_PROFILE && events.push({ anonymousId: id, messageId: `rb-${++n}`, timestamp: at(), ...e });
    push({ type: 'page', name: 'Home', context: { ...context, page: { url } } });
    const product = pick(PRODUCTS);
    push({ type: 'track', event: 'Product Viewed', properties: product, context });
    if (random() < 0.5) push({ type: 'track', event: 'Product Added', properties: product, context });
    if (random() < 0.3) push({ type: 'track', event: 'Checkout Started', properties: {}, context });
    if (random() < 0.2 && events.length < PER_PROFILE) {
      orders += 1;
      revenue += product.price;
      push({ type: 'track', event: 'Order Completed', properties: { order_id: `o-${n}`, revenue: product.price, products: [{ ...product, quantity: 1 }] }, context });
    }
    t += DAY / 4;
  }
  return events;
}

async function post(url, batch) {
  for (;;) {
    const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: AUTH },
      body: JSON.stringify({ batch, sentAt: new Date().toISOString() }) });
    await res.arrayBuffer();
    if (res.status === 200) return;
    if (res.status !== 429 && res.status < 500) throw new Error(`collector answered ${res.status}`);
    await sleep(500);
  }
}

async function get(url, path, timeout = 120_000) {
  const res = await fetch(`${url}${path}`, { headers: ADMIN, signal: AbortSignal.timeout(timeout) });
  return { status: res.status, body: await res.json() };
}

// Locally, after some 20,000 to 40,000 events wrangler's in-memory queue stops dispatching
// batches (seen with the code before the reports too: a limit of the local simulator). So
// the load goes in rounds, each on a fresh `wrangler dev` over the same storage.
process.setMaxListeners(0); // the harness adds an exit hook per Worker started
const keep = mkdtempSync(join(tmpdir(), 'cdp-bench-reports-'));
const all = [];
for (let i = 0; i < PROFILES; i++) all.push(...shopper(i));
let worker;
let url;
let loadSeconds = 0;
try {
  for (let round = 0; round < all.length; round += ROUND) {
    worker = await startWorker({ keep });
    url = worker.url;
    const before = (await get(url, '/v1/stats')).body.accepted ?? 0;
    const these = all.slice(round, round + ROUND);
    const started = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      while (next < these.length) {
        const start = next;
        next += BATCH;
        await post(url, these.slice(start, start + BATCH));
      }
    }));
    for (;;) {
      const body = await get(url, '/v1/stats', 10_000).then((r) => r.body, () => ({}));
      if ((body.accepted ?? 0) >= before + these.length && body.pending === 0) break;
      if (performance.now() - started > 600_000) throw new Error(`round ${round / ROUND} stalled: ${JSON.stringify(body)}`);
      await sleep(250);
    }
    loadSeconds += (performance.now() - started) / 1000;
    if (round + ROUND < all.length) await worker.stop();
  }
  // The directory learns each delivery's summaries in the same delivery: nothing to wait for.
  const reports = [
    ['overview', '/v1/reports/overview?range=30d'],
    ['funnel', '/v1/reports/funnel?range=30d'],
    ['carts', '/v1/reports/carts?range=30d'],
    ['revenue', '/v1/reports/revenue?range=30d'],
    ['campaigns', '/v1/reports/campaigns?range=30d'],
    ['products', '/v1/reports/products?range=30d'],
    ['events', '/v1/reports/events?range=30d'],
  ];
  console.log(`reports, locally (wrangler dev): ${PROFILES} profiles, ${all.length} events over 30 days`);
  console.log(`  loaded through the pipeline in ${loadSeconds.toFixed(0)} s (${(all.length / loadSeconds).toFixed(0)} events/s)`);
  const answers = {};
  for (const [name, path] of reports) {
    const times = [];
    for (let r = 0; r < RUNS; r++) {
      const s = performance.now();
      const { status, body } = await get(url, path);
      times.push(performance.now() - s);
      if (status !== 200) throw new Error(`${name}: ${status} ${JSON.stringify(body)}`);
      answers[name] = body;
    }
    times.sort((a, b) => a - b);
    console.log(`  ${name.padEnd(10)} median ${times[Math.floor(RUNS / 2)].toFixed(0).padStart(5)} ms, slowest ${times[RUNS - 1].toFixed(0).padStart(5)} ms (${RUNS} runs)`);
  }
  const agrees = (label, shown, sent) => console.log(`  ${label}: report ${shown}, sent ${sent} ${Math.abs(shown - sent) < 1e-6 ? '(agrees)' : '(DIFFERS)'}`);
  agrees('events', answers.overview.events.total, all.length);
  agrees('profiles', answers.overview.profilesCreated.total, PROFILES);
  agrees('orders', answers.revenue.orders.total, orders);
  agrees('revenue', answers.revenue.revenue.total, revenue);
  console.log(`  funnel: ${answers.funnel.steps.map((s) => `${s.name} ${s.count}`).join(' → ')}`);
} catch (e) {
  console.error(worker?.output().slice(-3000));
  throw e;
} finally {
  await worker?.stop();
  rmSync(keep, { recursive: true, force: true });
}
