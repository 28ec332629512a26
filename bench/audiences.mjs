// `make bench-audiences`: audiences locally in workerd (`wrangler dev`). Prints figures and
// asserts nothing:
//   - accepted → membership visible, p50 and p99 (one event at a time, each entering an
//     audience; this includes the queue's wait for a batch, up to 1 s locally);
//   - time-based exits: how long after its instant a `within` window's exit is visible,
//     with no new event;
//   - delivery cost per event with 0, 10 and 50 audiences defined;
//   - backfill rate, profiles evaluated per second.
//
// Locally the Worker and every Durable Object share one workerd thread and one disk, so
// these are floors: on Cloudflare each profile is its own object.
import { WRITE_KEY, startWorker } from '../tests/e2e/harness.mjs';

const PROFILES = Number(process.env.BENCH_PROFILES || 200);
const LATENCY_SAMPLES = Number(process.env.BENCH_SAMPLES || 40);
const BATCH = 50;
const AUTH = `Basic ${btoa(`${WRITE_KEY}:`)}`;
const ADMIN = { Authorization: 'Bearer demo-admin-token', 'Content-Type': 'application/json' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function send(url, events) {
  for (let i = 0; i < events.length; i += BATCH) {
    const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: AUTH },
      body: JSON.stringify({ batch: events.slice(i, i + BATCH), sentAt: new Date().toISOString() }) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`collector answered ${res.status}`);
  }
}

async function get(url, path) {
  for (;;) {
    try {
      const res = await fetch(`${url}${path}`, { headers: ADMIN, signal: AbortSignal.timeout(30_000) });
      return { status: res.status, body: await res.json() };
    } catch { await sleep(100); }
  }
}

async function define(url, definition) {
  const res = await fetch(`${url}/v1/audiences`, { method: 'POST', headers: ADMIN, body: JSON.stringify(definition) });
  if (res.status !== 201) throw new Error(`defining ${definition.key}: ${res.status} ${await res.text()}`);
  const t0 = performance.now();
  for (;;) {
    const { body } = await get(url, `/v1/audiences/${definition.key}`);
    if (body.state === 'ready') return { seconds: (performance.now() - t0) / 1000, evaluated: body.progress.evaluated };
    await sleep(100);
  }
}

/** Sends `events` and waits until the consumer has delivered them; the seconds taken. */
async function timed(url, events) {
  const before = (await get(url, '/v1/stats')).body.delivered || 0;
  const t0 = performance.now();
  await send(url, events);
  while (((await get(url, '/v1/stats')).body.delivered || 0) < before + events.length) await sleep(50);
  return (performance.now() - t0) / 1000;
}

const membersOf = async (url, anonymousId) => {
  const { status, body } = await get(url, `/v1/profiles/lookup?anonymousId=${anonymousId}`);
  return status === 200 ? body.audiences.map((a) => a.key) : [];
};
const quantile = (xs, q) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
let n = 0;
const event = (anonymousId, name, extra = {}) => ({ type: 'track', event: name, anonymousId, messageId: `b-${++n}`,
  timestamp: new Date().toISOString(), properties: { total: 10 + (n % 90) }, ...extra });

const worker = await startWorker();
const url = worker.url;
try {
  // Delivery cost with no audience, then 10, then 50.
  const people = Array.from({ length: PROFILES }, (_, i) => `aud-bench-${i}`);
  await timed(url, people.map((p) => event(p, 'Product Viewed')));
  const cost = [];
  const round = async (defined) => {
    const events = people.flatMap((p) => [event(p, 'Product Viewed'), event(p, 'Product Added')]);
    const seconds = await timed(url, events);
    cost.push({ defined, events: events.length, seconds });
  };
  await round(0);
  const kinds = ['Product Viewed', 'Product Added', 'Order Completed', 'Checkout Started', 'Cart Viewed'];
  const definitionOf = (i) => ({ key: `bench_${i}`, where: { all: [
    { did: { event: kinds[i % kinds.length], within: `${1 + (i % 24)}h`, atLeast: 1 + (i % 3) } },
    { didNot: { event: 'Order Completed', within: '30d' } },
    { have: `computed.pageViews<${100 + i}` }] } });
  const backfills = [];
  for (let i = 0; i < 10; i += 1) backfills.push(await define(url, definitionOf(i)));
  await round(10);
  for (let i = 10; i < 50; i += 1) backfills.push(await define(url, definitionOf(i)));
  await round(50);

  // Backfill: one more audience over every profile there is.
  const backfill = await define(url, { key: 'bench_backfill', where: { did: { event: 'Product Added', where: ['properties.total>50'] } } });

  // accepted → visible, one event at a time.
  await define(url, { key: 'bench_latency', where: { did: { event: 'Latency Probe', within: '1h' } } });
  const latencies = [];
  for (let i = 0; i < LATENCY_SAMPLES; i += 1) {
    const id = `latency-${i}`;
    const t0 = performance.now();
    await send(url, [event(id, 'Latency Probe')]);
    while (!(await membersOf(url, id)).includes('bench_latency')) await sleep(10);
    latencies.push(performance.now() - t0);
  }

  // Time-based exits: a 5 s window, no new event.
  await define(url, { key: 'bench_window', where: { did: { event: 'Window Probe', within: '5s' } } });
  const exits = [];
  const probes = Array.from({ length: 10 }, (_, i) => `window-${i}`);
  const sentAt = new Map();
  for (const id of probes) {
    const e = event(id, 'Window Probe');
    sentAt.set(id, Date.parse(e.timestamp));
    await send(url, [e]);
  }
  const pending = new Set(probes);
  let entered = new Set();
  while (pending.size) {
    for (const id of [...pending]) {
      const members = await membersOf(url, id);
      if (members.includes('bench_window')) entered.add(id);
      else if (entered.has(id)) {
        exits.push(Date.now() - (sentAt.get(id) + 5_000));
        pending.delete(id);
      }
    }
    await sleep(20);
  }

  console.log(`audiences, locally (wrangler dev), ${PROFILES} profiles`);
  console.log(`  accepted → membership visible (${LATENCY_SAMPLES} events): p50 ${quantile(latencies, 0.5).toFixed(0)} ms, p99 ${quantile(latencies, 0.99).toFixed(0)} ms`);
  console.log('    (the queue waits up to 1 s for a batch; membership is decided in the write that stores the event)');
  console.log(`  time-based exit visible after its instant (${exits.length} profiles, polled every 20 ms): p50 ${quantile(exits, 0.5).toFixed(0)} ms, max ${Math.max(...exits).toFixed(0)} ms`);
  console.log('  delivery with audiences defined (events into existing profiles):');
  for (const c of cost) {
    const per = (c.seconds / c.events) * 1000;
    const extra = c.defined ? ` (+${(per - (cost[0].seconds / cost[0].events) * 1000).toFixed(2)} ms per event over none)` : '';
    console.log(`    ${String(c.defined).padStart(2)} audiences: ${c.events} events in ${c.seconds.toFixed(2)} s, ${(c.events / c.seconds).toFixed(0)} events/s, ${per.toFixed(2)} ms/event${extra}`);
  }
  console.log(`  backfill: ${backfill.evaluated} profiles in ${backfill.seconds.toFixed(2)} s, ${(backfill.evaluated / backfill.seconds).toFixed(0)} profiles/s`);
} finally {
  await worker.stop();
}
