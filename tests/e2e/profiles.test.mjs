// Identity resolution in the profile store, against the Worker under `wrangler dev`:
// anonymous browsing then login, two devices of one user, the shared-device guard, blocked
// values, and the explanation of why each identifier belongs to a profile.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { admin, eventually, sendBatch, startWorker } from './harness.mjs';

let worker;

before(async () => { worker = await startWorker(); });
after(async () => { await worker?.stop(); });

const at = (minutes) => new Date(Date.UTC(2026, 10, 20, 10, minutes)).toISOString();
const lookup = (kind, value) => admin(worker.url, `/v1/profiles/lookup?${kind}=${encodeURIComponent(value)}`);
const profileWith = (kind, value, count) => eventually(async () => {
  const { status, body } = await lookup(kind, value);
  return status === 200 && body.eventCount >= count ? body : null;
}, { timeout: 15_000 });
const ids = (profile) => profile.identifiers.map((i) => `${i.type}:${i.value}`).sort();

test('an anonymous visitor who logs in keeps the history from before login', async () => {
  await sendBatch(worker.url, [
    { type: 'page', anonymousId: 'anon-login', messageId: 'l-1', timestamp: at(1) },
    { type: 'track', event: 'Product Viewed', anonymousId: 'anon-login', messageId: 'l-2', timestamp: at(2) },
  ]);
  await profileWith('anonymousId', 'anon-login', 2);
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: 'anon-login', userId: 'user-login', messageId: 'l-3', timestamp: at(3), traits: { email: 'Login@Example.com' } },
    { type: 'track', event: 'Order Completed', userId: 'user-login', messageId: 'l-4', timestamp: at(4) },
  ]);
  const profile = await profileWith('userId', 'user-login', 4);
  assert.deepEqual(ids(profile), ['anonymousId:anon-login', 'email:login@example.com', 'userId:user-login']);
  assert.deepEqual(profile.events.map((e) => e.messageId), ['l-4', 'l-3', 'l-2', 'l-1']);
  assert.equal((await lookup('email', ' LOGIN@example.com ')).body.id, profile.id, 'lookup by a normalised email');
  assert.equal((await lookup('anonymousId', 'anon-login')).body.id, profile.id);

  // The timeline, paged and filtered.
  const first = await admin(worker.url, `/v1/profiles/${profile.id}/events?limit=3`);
  assert.deepEqual(first.body.events.map((e) => e.messageId), ['l-4', 'l-3', 'l-2']);
  const second = await admin(worker.url, `/v1/profiles/${profile.id}/events?limit=3&cursor=${first.body.nextCursor}`);
  assert.deepEqual(second.body.events.map((e) => e.messageId), ['l-1']);
  assert.equal(second.body.nextCursor, null);
  const tracks = await admin(worker.url, `/v1/profiles/${profile.id}/events?type=track&name=Product%20Viewed`);
  assert.deepEqual(tracks.body.events.map((e) => e.messageId), ['l-2']);
  const halfMinuteAfter = (t) => new Date(Date.parse(t) + 30_000).toISOString(); // times carry the clock correction
  const window = await admin(worker.url, `/v1/profiles/${profile.id}/events?from=${at(2)}&to=${halfMinuteAfter(at(3))}`);
  assert.deepEqual(window.body.events.map((e) => e.messageId), ['l-3', 'l-2']);
});

test('the same user on a second device ends in the same profile with both histories', async () => {
  await sendBatch(worker.url, [
    { type: 'page', anonymousId: 'laptop', messageId: 'd-1', timestamp: at(10) },
    { type: 'identify', anonymousId: 'laptop', userId: 'user-devices', messageId: 'd-2', timestamp: at(11) },
  ]);
  await profileWith('userId', 'user-devices', 2);
  await sendBatch(worker.url, [{ type: 'page', anonymousId: 'phone', messageId: 'd-3', timestamp: at(12) }]);
  await profileWith('anonymousId', 'phone', 1);
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: 'phone', userId: 'user-devices', messageId: 'd-4', timestamp: at(13) }]);
  const profile = await profileWith('userId', 'user-devices', 4);
  assert.deepEqual(ids(profile), ['anonymousId:laptop', 'anonymousId:phone', 'userId:user-devices']);
  const phone = await lookup('anonymousId', 'phone');
  assert.equal(phone.body.id, profile.id, 'the phone profile was merged in');

  const explained = await admin(worker.url, `/v1/profiles/${profile.id}/explain`);
  assert.equal(explained.status, 200);
  const why = Object.fromEntries(explained.body.identifiers.map((i) => [`${i.type}:${i.value}`, i]));
  assert.equal(why['anonymousId:laptop'].messageId, 'd-1');
  assert.match(why['userId:user-devices'].because, /event d-2/);
  assert.equal(explained.body.merges.length, 1, 'one merge, logged');
  assert.equal(explained.body.merges[0].messageId, 'd-4');
  assert.deepEqual(explained.body.merges[0].identifiers, ['anonymousId:phone']);
});

test('a second user on a shared device starts a new profile instead of merging two people', async () => {
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: 'kiosk', userId: 'alice', messageId: 's-1', timestamp: at(20) },
    { type: 'track', event: 'Order Completed', anonymousId: 'kiosk', userId: 'alice', messageId: 's-2', timestamp: at(21) },
  ]);
  await profileWith('userId', 'alice', 2);
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: 'kiosk', userId: 'bob', messageId: 's-3', timestamp: at(22) }]);
  const bob = await profileWith('userId', 'bob', 1);
  const alice = (await lookup('userId', 'alice')).body;
  assert.notEqual(bob.id, alice.id);
  assert.deepEqual(ids(alice), ['anonymousId:kiosk', 'userId:alice']);
  assert.deepEqual(ids(bob), ['userId:bob']);
  assert.deepEqual(bob.events.map((e) => e.messageId), ['s-3']);
});

test('a blocked identifier value links nothing', async () => {
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: 'visitor-a', userId: 'null', messageId: 'b-1', timestamp: at(30), traits: { email: 'undefined' } },
    { type: 'identify', anonymousId: 'visitor-b', userId: 'null', messageId: 'b-2', timestamp: at(31) },
  ]);
  const a = await profileWith('anonymousId', 'visitor-a', 1);
  const b = await profileWith('anonymousId', 'visitor-b', 1);
  assert.notEqual(a.id, b.id, '"null" did not join two visitors');
  assert.deepEqual(ids(a), ['anonymousId:visitor-a']);
  assert.equal((await lookup('userId', 'null')).status, 400, 'a blocked value is not an identifier');
});

test('duplicates and out-of-order delivery leave one consistent profile', async () => {
  const events = [
    { type: 'identify', anonymousId: 'ooo', userId: 'user-ooo', messageId: 'o-2', timestamp: at(41), traits: { plan: 'pro' } },
    { type: 'page', anonymousId: 'ooo', messageId: 'o-1', timestamp: at(40) },
    { type: 'identify', userId: 'user-ooo', messageId: 'o-0', timestamp: at(39), traits: { plan: 'free' } },
  ];
  await sendBatch(worker.url, [events[0]]);
  await sendBatch(worker.url, [events[1], events[0]]);
  await sendBatch(worker.url, [events[2], events[1]]);
  const profile = await profileWith('userId', 'user-ooo', 3);
  await new Promise((r) => setTimeout(r, 1500));
  const settled = (await lookup('anonymousId', 'ooo')).body;
  assert.equal(settled.id, profile.id);
  assert.equal(settled.eventCount, 3);
  assert.equal(settled.traits.plan, 'pro', 'the latest trait by event time wins, whatever the arrival order');
});

test('computed traits are right after duplicates and out-of-order events', async () => {
  const order = { type: 'track', event: 'Order Completed', anonymousId: 'buyer', messageId: 'c-3', timestamp: at(52),
    properties: { order_id: 'O-1', revenue: 118, products: [{ product_id: 'stove', quantity: 2, category: 'Kitchen' }] } };
  const events = [
    { type: 'page', anonymousId: 'buyer', messageId: 'c-1', timestamp: at(50), context: { sessionId: 7 } },
    { type: 'track', event: 'Product Viewed', anonymousId: 'buyer', messageId: 'c-2', timestamp: at(51), properties: { product_id: 'stove', category: 'Kitchen' } },
    { type: 'track', event: 'Product Added', anonymousId: 'buyer', messageId: 'c-4', timestamp: at(53), properties: { product_id: 'tent-2p', price: 349, quantity: 1 } },
  ];
  await sendBatch(worker.url, [order, events[2]]);       // late and early mixed up
  await sendBatch(worker.url, [events[1], order]);       // the order twice
  await sendBatch(worker.url, [events[0], order]);       // and thrice
  const profile = await profileWith('anonymousId', 'buyer', 4);
  await new Promise((r) => setTimeout(r, 1500));
  const c = (await lookup('anonymousId', 'buyer')).body.computedTraits;
  assert.equal(c.orderCount, 1);
  assert.equal(c.totalRevenue, 118);
  assert.equal(c.averageOrderValue, 118);
  assert.equal(c.visits, 1);
  assert.equal(c.sessions, 1);
  assert.deepEqual(c.topViewedProducts, ['stove']);
  assert.deepEqual(c.topBoughtProducts, ['stove']);
  assert.equal(c.cartValue, 349, 'the tent added after the order is in the cart');
  assert.equal(c.cartAbandoned, true, 'added long ago (event time), no order since');
  assert.ok(Math.abs(Date.parse(c.firstSeen) - Date.parse(at(50))) < 1000, 'first seen: the page view (clock-corrected)');
  assert.equal(profile.id, (await lookup('anonymousId', 'buyer')).body.id);
});

test('export returns everything held; erasure removes the person everywhere and stays erased', async () => {
  const events = [
    { type: 'identify', anonymousId: 'erase-anon', userId: 'erase-user', messageId: 'x-1', timestamp: at(60), traits: { email: 'gone@example.com' } },
    { type: 'track', event: 'Order Completed', userId: 'erase-user', messageId: 'x-2', timestamp: at(61), properties: { order_id: 'X', revenue: 5 } },
  ];
  await sendBatch(worker.url, events);
  const profile = await profileWith('userId', 'erase-user', 2);
  await new Promise((r) => setTimeout(r, 1000)); // the archive write follows delivery

  const exported = await admin(worker.url, `/v1/profiles/${profile.id}/export`);
  assert.equal(exported.status, 200, JSON.stringify(exported.body));
  assert.deepEqual(exported.body.events.map((e) => e.messageId), ['x-1', 'x-2']);
  assert.equal(exported.body.traits.email, 'gone@example.com');
  assert.ok(exported.body.explain.identifiers.length === 3);

  const erased = await fetch(`${worker.url}/v1/profiles/${profile.id}`, { method: 'DELETE', headers: { Authorization: 'Bearer demo-admin-token' } });
  assert.equal(erased.status, 200);
  const report = await erased.json();
  assert.equal(report.detail.events, 2);
  assert.ok(report.detail.archivedEvents >= 2, 'archived raw events removed');

  for (const [kind, value] of [['userId', 'erase-user'], ['anonymousId', 'erase-anon'], ['email', 'gone@example.com']]) {
    assert.equal((await lookup(kind, value)).status, 404, `${kind} forgotten`);
  }
  assert.equal((await admin(worker.url, `/v1/profiles/${profile.id}`)).status, 404);
  assert.equal((await admin(worker.url, `/v1/profiles/${profile.id}/export`)).status, 404);

  // Later events with those identifiers are dropped: the person is not re-created.
  await sendBatch(worker.url, [{ type: 'track', event: 'Came Back', userId: 'erase-user', messageId: 'x-3', timestamp: at(62) },
    { type: 'page', anonymousId: 'erase-anon', messageId: 'x-4', timestamp: at(63) }]);
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal((await lookup('userId', 'erase-user')).status, 404);
  assert.equal((await lookup('anonymousId', 'erase-anon')).status, 404);

  // The archive holds none of them: a replay brings nothing back.
  const replay = await fetch(`${worker.url}/v1/admin/replay?from=${new Date(Date.now() - 3_600_000).toISOString()}&to=${new Date(Date.now() + 3_600_000).toISOString()}`,
    { method: 'POST', headers: { Authorization: 'Bearer demo-admin-token' } });
  assert.equal(replay.status, 200);
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal((await lookup('userId', 'erase-user')).status, 404, 'not undone by a replay');

  const audit = await admin(worker.url, '/v1/audit');
  const actions = audit.body.filter((e) => e.profile === profile.id).map((e) => e.action);
  assert.deepEqual(actions, ['export', 'erase']);
});

test('an offline import of customers and orders lands idempotently, with per-row errors', async () => {
  const csv = [
    'user_id,email,name,order_id,total,currency,timestamp',
    `pos-1,Pos@Example.com,"Doe, Jo",,,,${at(70)}`,
    `pos-1,,,POS-9,42.5,EUR,${at(71)}`,
    ',,,POS-10,5,EUR,',
    'pos-2,,,POS-11,lots,EUR,',
  ].join('\n');
  const post = () => fetch(`${worker.url}/v1/import`, { method: 'POST',
    headers: { 'Content-Type': 'text/csv', Authorization: `Basic ${btoa('demo-write-key:')}` }, body: csv });
  const first = await post();
  assert.equal(first.status, 207);
  const report = await first.json();
  assert.equal(report.imported, 2);
  assert.deepEqual(report.rowErrors.map((e) => e.line), [4, 5]);
  assert.equal((await post()).status, 207, 'the same file again');
  const profile = await profileWith('userId', 'pos-1', 2);
  await new Promise((r) => setTimeout(r, 1500));
  const settled = (await lookup('email', 'pos@example.com')).body;
  assert.equal(settled.id, profile.id);
  assert.equal(settled.eventCount, 2, 'imported once, however often the file is sent');
  assert.equal(settled.computedTraits.totalRevenue, 42.5);
  assert.equal(settled.traits.name, 'Doe, Jo');
});
