// `make bench-store`: the profile store locally in workerd (`wrangler dev`): events per second
// from the collector into profiles (to new profiles, and to profiles that exist), and what a
// merge costs, against the same number of events that merge nothing. A benchmark, not a
// test: it prints figures and asserts nothing.
//
// Locally the Worker and every Durable Object share one workerd thread and one disk, so
// these figures are a floor: on Cloudflare each profile is its own object on its own machine.
import { WRITE_KEY, startWorker } from '../tests/e2e/harness.mjs';

const PROFILES = Number(process.env.BENCH_PROFILES || 200);
const EVENTS_PER_PROFILE = Number(process.env.BENCH_EVENTS_PER_PROFILE || 10);
const BATCH = 50;
const AUTH = `Basic ${btoa(`${WRITE_KEY}:`)}`;
const ADMIN = { Authorization: 'Bearer demo-admin-token' };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function send(url, events) {
  for (let i = 0; i < events.length; i += BATCH) {
    const batch = events.slice(i, i + BATCH);
    const res = await fetch(`${url}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: AUTH },
      body: JSON.stringify({ batch, sentAt: new Date().toISOString() }) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`collector answered ${res.status}`);
  }
}

// Local workerd answers late while it works (and may drop a request): ask with a timeout.
async function stats(url) {
  for (;;) {
    try {
      const res = await fetch(`${url}/v1/stats`, { headers: ADMIN, signal: AbortSignal.timeout(30_000) });
      return await res.json();
    } catch { await sleep(200); }
  }
}

/** Sends `events` and waits until the consumer has delivered them; returns the seconds taken. */
async function timed(url, events, extra = {}) {
  const before = await stats(url);
  const target = (before.delivered || 0) + events.length;
  const t0 = performance.now();
  await send(url, events);
  for (;;) {
    const now = await stats(url);
    if ((now.delivered || 0) >= target && Object.entries(extra).every(([k, v]) => (now[k] || 0) >= (before[k] || 0) + v)) break;
    await sleep(100);
  }
  return (performance.now() - t0) / 1000;
}

const timestamp = (minute) => new Date(Date.UTC(2026, 10, 1, 12, minute)).toISOString();
const page = (anonymousId, n, minute) => ({ type: 'page', anonymousId, messageId: `${anonymousId}-${n}`, timestamp: timestamp(minute),
  properties: { path: `/p/${n}` }, context: { sessionId: 1 } });
const order = (userId, n) => ({ type: 'track', event: 'Order Completed', userId, messageId: `${userId}-order-${n}`, timestamp: timestamp(30),
  properties: { order_id: `${userId}-${n}`, revenue: 20 + n, products: [{ product_id: `p-${n % 7}`, quantity: 1 }] } });

const worker = await startWorker();
try {
  const rows = [];
  const row = (label, events, seconds, note = '') => rows.push({ label, events, seconds, note });

  // 1. New profiles: one event each for people never seen.
  const fresh = Array.from({ length: PROFILES }, (_, i) => page(`new-${i}`, 0, 1));
  row('events creating a new profile each', fresh.length, await timed(worker.url, fresh));

  // 2. Events into profiles that exist (the steady state of a site).
  const known = [];
  for (let n = 1; n <= EVENTS_PER_PROFILE; n += 1) {
    for (let i = 0; i < PROFILES; i += 1) known.push(page(`new-${i}`, n, 1 + n));
  }
  row('events into existing profiles', known.length, await timed(worker.url, known));

  // 3. Merges: each anonymous profile (with its events above) logs in as a user who already
  //    has a profile of their own, so each identify merges two profiles; against the same
  //    number of identify calls that link a user id to a visitor and merge nothing.
  const users = Array.from({ length: PROFILES }, (_, i) => order(`user-${i}`, i));
  row('events creating a user profile each', users.length, await timed(worker.url, users));
  const noMerge = Array.from({ length: PROFILES }, (_, i) => ({ type: 'identify', anonymousId: `solo-${i}`, userId: `solo-user-${i}`,
    messageId: `solo-${i}`, timestamp: timestamp(40), traits: { plan: 'free' } }));
  const plain = await timed(worker.url, noMerge);
  row('identify, no merge (new visitor + user id)', noMerge.length, plain);
  const merges = Array.from({ length: PROFILES }, (_, i) => ({ type: 'identify', anonymousId: `new-${i}`, userId: `user-${i}`,
    messageId: `login-${i}`, timestamp: timestamp(41), traits: { plan: 'pro' } }));
  const merged = await timed(worker.url, merges, { merges: PROFILES });
  row(`identify that merges two profiles (${EVENTS_PER_PROFILE + 1} + 1 events)`, merges.length, merged);

  console.log(`profile store, locally (wrangler dev), ${PROFILES} profiles, batches of ${BATCH}`);
  console.log(`  ${'what'.padEnd(56)} ${'events'.padStart(7)} ${'seconds'.padStart(8)} ${'events/s'.padStart(9)}`);
  for (const r of rows) {
    console.log(`  ${r.label.padEnd(56)} ${String(r.events).padStart(7)} ${r.seconds.toFixed(2).padStart(8)} ${(r.events / r.seconds).toFixed(0).padStart(9)}`);
  }
  const perMerge = ((merged - plain) / PROFILES) * 1000;
  console.log(`  merge cost: ${((merged / PROFILES) * 1000).toFixed(1)} ms per merging identify, ${perMerge.toFixed(1)} ms more than one that merges nothing`);
  const s = await stats(worker.url);
  console.log(`  counters: delivered ${s.delivered}, merges ${s.merges || 0}, duplicates ${s.duplicates || 0}, retries ${s.queue_retries || 0}`);
} finally {
  await worker.stop();
}
