// Retention against the Worker under `wrangler dev`, with short settings (events kept 60 s,
// quiet anonymous profiles 45 s): old events leave the timeline while computed traits and
// audiences stay as they were; a quiet anonymous profile is deleted, and its visitor coming
// back starts afresh; /v1/stats counts both.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_TOKEN, admin, counters, eventually, sendBatch, settled, startWorker } from './harness.mjs';

let worker;
before(async () => {
  worker = await startWorker({ vars: { RETAIN_EVENTS: '60s', RETAIN_ANONYMOUS: '45s' } });
  for (const [key, did] of [['buyers', { event: 'Order Completed' }], ['visitors', { type: 'page' }]]) {
    const res = await fetch(`${worker.url}/v1/audiences`, { method: 'POST',
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ key, name: key, where: { did } }) });
    assert.equal(res.status, 201);
  }
});
after(async () => {
  await worker?.stop();
});

const ago = (ms) => new Date(Date.now() - ms).toISOString();
let n = 0;
const event = (fields) => ({ messageId: `ret-${++n}`, ...fields });

test('old events leave; computed traits and audiences stay; a quiet anonymous profile goes', async () => {
  const { status } = await sendBatch(worker.url, [
    event({ type: 'track', event: 'Order Completed', userId: 'ret-user', anonymousId: 'ret-device', timestamp: ago(300_000),
      properties: { order_id: 'ret-o1', revenue: 120, currency: 'USD' } }),
    event({ type: 'track', event: 'Product Viewed', userId: 'ret-user', anonymousId: 'ret-device', timestamp: ago(1_000),
      properties: { product_id: 'stove' } }),
    event({ type: 'page', name: 'Home', anonymousId: 'ret-quiet', timestamp: ago(300_000) }),
    event({ type: 'page', name: 'Home', anonymousId: 'ret-active', timestamp: ago(1_000) }),
  ]);
  assert.equal(status, 200);
  await settled(worker.url, 4);
  const stats = await eventually(async () => {
    const s = await counters(worker.url);
    return (s['retention.profiles_expired'] ?? 0) >= 1 && (s['retention.events_expired'] ?? 0) >= 3 ? s : null;
  }, { timeout: 30_000, interval: 250 });
  assert.ok(stats, `retention ran: ${JSON.stringify(await counters(worker.url))}`);
  assert.equal(stats['retention.profiles_expired'], 1);
  // The old order; the quiet profile's visit and its `Audience Entered` timeline event.
  assert.equal(stats['retention.events_expired'], 3);

  const user = (await admin(worker.url, '/v1/profiles/lookup?userId=ret-user')).body;
  const names = user.events.map((e) => e.event ?? e.type);
  assert.ok(!names.includes('Order Completed'), `the order left the timeline: ${names}`);
  assert.ok(names.includes('Product Viewed'));
  assert.equal(user.computedTraits.totalRevenue, 120, 'the revenue it counted stays');
  assert.equal(user.computedTraits.orderCount, 1);
  assert.deepEqual(user.audiences.map((a) => a.key), ['buyers'], 'still a buyer');
  const members = (await admin(worker.url, '/v1/audiences/buyers/members')).body;
  assert.equal(members.members?.length ?? members.profiles?.length, 1);

  assert.equal((await admin(worker.url, '/v1/profiles/lookup?anonymousId=ret-quiet')).status, 404, 'the quiet profile is gone');
  // Entries: the user into buyers, both visitors into visitors; and the deleted profile's
  // exit from visitors, which activation must hear of as for an erased person.
  const changes = await eventually(async () => {
    const s = await counters(worker.url);
    return (s.membership_changes ?? 0) >= 4 ? s.membership_changes : null;
  }, { timeout: 15_000, interval: 250 });
  assert.equal(changes, 4, "three entries and the deleted profile's exit");
  assert.equal((await admin(worker.url, '/v1/profiles/lookup?anonymousId=ret-active')).status, 200, 'the active one stays');

  // The visitor comes back: a new profile, with only the new visit.
  await sendBatch(worker.url, [event({ type: 'page', name: 'Back', anonymousId: 'ret-quiet', timestamp: ago(0) })]);
  await settled(worker.url, 5);
  const back = (await admin(worker.url, '/v1/profiles/lookup?anonymousId=ret-quiet')).body;
  // Its visit, and its entry into `visitors` again; nothing from before.
  assert.deepEqual(back.events.map((e) => e.name ?? e.event).sort(), ['Audience Entered', 'Back']);
});
