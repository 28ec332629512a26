// Identity resolution in the profile store, against the Worker under `wrangler dev`:
// anonymous browsing then login, two devices of one user, the shared-device guard, blocked
// values (built in and the workspace's own), the explanation of why each identifier belongs
// to a profile, unmerge, search, and where each trait value came from.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { admin, counters, eventually, replayed, sendBatch, settled, startWorker } from './harness.mjs';

let worker;

// The workspace's own rules: one more blocked value (a test address the shop's staff use).
const RULES = { blocked: ['test@example.com'] };
// And a short abandoned-cart window (the default is an hour), to see the setting take effect.
before(async () => {
  worker = await startWorker({ vars: { IDENTITY_RULES: JSON.stringify(RULES), CART_ABANDON_MINUTES: '2',
    CURRENCY: 'EUR', CURRENCY_RATES: JSON.stringify({ JPY: 0.0062 }) } });
});
after(async () => { await worker?.stop(); });

// Event times relative to now (a fixed date would fall out of the 90-day event window one
// day): the start of the hour two days ago, plus minutes.
const BASE = Math.floor((Date.now() - 2 * 86_400_000) / 3_600_000) * 3_600_000;
const at = (minutes) => new Date(BASE + minutes * 60_000).toISOString();
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

  // The directory lists the merged profile once, and not the one merged into it.
  const listed = await eventually(async () => {
    const { body } = await admin(worker.url, `/v1/profiles?where=${encodeURIComponent('identifiers.anonymousId~"phone"')}`);
    return body.profiles?.length === 1 && body.profiles[0].identifiers.userId ? body : null;
  });
  assert.equal(listed.profiles[0].id, profile.id);
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
  const before = await counters(worker.url);
  await sendBatch(worker.url, [events[0]]);
  await sendBatch(worker.url, [events[1], events[0]]);
  await sendBatch(worker.url, [events[2], events[1]]);
  const profile = await profileWith('userId', 'user-ooo', 3);
  await settled(worker.url, before.accepted + 5); // every copy through the queue
  const final = (await lookup('anonymousId', 'ooo')).body;
  assert.equal(final.id, profile.id);
  assert.equal(final.eventCount, 3);
  assert.equal(final.traits.plan, 'pro', 'the latest trait by event time wins, whatever the arrival order');
});

test('computed traits are right after duplicates and out-of-order events', async () => {
  const order = { type: 'track', event: 'Order Completed', anonymousId: 'buyer', messageId: 'c-3', timestamp: at(52),
    properties: { order_id: 'O-1', revenue: 118, products: [{ product_id: 'stove', quantity: 2, category: 'Kitchen' }] } };
  const events = [
    { type: 'page', anonymousId: 'buyer', messageId: 'c-1', timestamp: at(50), context: { sessionId: 7 } },
    { type: 'track', event: 'Product Viewed', anonymousId: 'buyer', messageId: 'c-2', timestamp: at(51), properties: { product_id: 'stove', category: 'Kitchen' } },
    { type: 'track', event: 'Product Added', anonymousId: 'buyer', messageId: 'c-4', timestamp: at(53), properties: { product_id: 'tent-2p', price: 349, quantity: 1 } },
  ];
  const before = await counters(worker.url);
  await sendBatch(worker.url, [order, events[2]]);       // late and early mixed up
  await sendBatch(worker.url, [events[1], order]);       // the order twice
  await sendBatch(worker.url, [events[0], order]);       // and thrice
  const profile = await profileWith('anonymousId', 'buyer', 4);
  await settled(worker.url, before.accepted + 6);
  const c = (await lookup('anonymousId', 'buyer')).body.computedTraits;
  assert.equal(c.orderCount, 1);
  assert.equal(c.totalRevenue, 118);
  assert.equal(c.averageOrderValue, 118);
  assert.equal(c.visits, 1, 'one session');
  assert.equal(c.pageViews, 1);
  assert.deepEqual(c.topViewedProducts, ['stove']);
  assert.deepEqual(c.topBoughtProducts, ['stove']);
  assert.equal(c.cartValue, 349, 'the tent added after the order is in the cart');
  assert.equal(c.cartAbandoned, true, 'added long ago (event time), no order since');
  assert.ok(Math.abs(Date.parse(c.firstSeen) - Date.parse(at(50))) < 1000, 'first seen: the page view (clock-corrected)');
  assert.equal(profile.id, (await lookup('anonymousId', 'buyer')).body.id);
});

test('computed traits stay right over many deliveries, also after a merge', async () => {
  // The aggregate is saved every few writes and read with the writes since folded in:
  // one delivery at a time, past a save and between two.
  const orders = 11;
  let before = (await counters(worker.url)).accepted ?? 0;
  for (let i = 1; i <= orders; i += 1) {
    await sendBatch(worker.url, [{ type: 'track', event: 'Order Completed', anonymousId: 'regular', messageId: `r-${i}`,
      timestamp: at(60 + i), properties: { order_id: `R-${i}`, revenue: i * 10 } }]);
    await settled(worker.url, before + i);
  }
  const total = (orders * (orders + 1) / 2) * 10;
  let c = (await profileWith('anonymousId', 'regular', orders)).computedTraits;
  assert.equal(c.orderCount, orders);
  assert.equal(c.totalRevenue, total);
  // A second device's order, then the login that joins both: the survivor rebuilds.
  before = (await counters(worker.url)).accepted ?? 0;
  await sendBatch(worker.url, [{ type: 'track', event: 'Order Completed', anonymousId: 'regular-phone', messageId: 'r-phone',
    userId: 'user-regular', timestamp: at(80), properties: { order_id: 'R-P', revenue: 5 } }]);
  await settled(worker.url, before + 1);
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: 'regular', userId: 'user-regular', messageId: 'r-login', timestamp: at(81) }]);
  await settled(worker.url, before + 2);
  const merged = await profileWith('userId', 'user-regular', orders + 2);
  c = merged.computedTraits;
  assert.equal(c.orderCount, orders + 1);
  assert.equal(c.totalRevenue, total + 5);
  // And one more delivery after the merge is added once.
  await sendBatch(worker.url, [{ type: 'track', event: 'Order Completed', userId: 'user-regular', messageId: 'r-last',
    timestamp: at(82), properties: { order_id: 'R-L', revenue: 1 } }]);
  c = (await profileWith('userId', 'user-regular', orders + 3)).computedTraits;
  assert.equal(c.orderCount, orders + 2);
  assert.equal(c.totalRevenue, total + 6);
});

test('revenue is kept per currency and totalled in the workspace currency', async () => {
  const order = (messageId, revenue, currency) => ({ type: 'track', event: 'Order Completed', anonymousId: 'money', messageId,
    timestamp: at(70), properties: { order_id: messageId, revenue, ...(currency ? { currency } : {}) } });
  await sendBatch(worker.url, [order('m-eur', 100, 'EUR'), order('m-jpy', 10000, 'JPY'), order('m-none', 50)]);
  // The Tokyo shop's source says JPY: its order without a currency is read in yen.
  await sendBatch(worker.url, [order('m-tokyo', 5000)], 'jpy-key');
  const profile = await profileWith('anonymousId', 'money', 4);
  const c = profile.computedTraits;
  assert.equal(c.currency, 'EUR');
  assert.deepEqual(c.revenueByCurrency, { EUR: 150, JPY: 15000 });
  assert.ok(Math.abs(c.totalRevenue - (150 + 15000 * 0.0062)) < 1e-9, String(c.totalRevenue));
  assert.deepEqual(c.unconvertedCurrencies, []);
  assert.equal(profile.events.find((e) => e.messageId === 'm-tokyo').properties.currency, 'JPY');
  // JSON.parse keeps a -0 it reads; searching the text for '-0' would match dates such as 2026-12-03.
  const negativeZeros = (v) => (Object.is(v, -0) ? 1 : v && typeof v === 'object' ? Object.values(v).reduce((n, x) => n + negativeZeros(x), 0) : 0);
  assert.equal(negativeZeros(c), 0, 'no negative zero');
  assert.equal(c.cartValue, 0);
});

test('a cart counts as abandoned after the workspace window (CART_ABANDON_MINUTES)', async () => {
  const ago = (minutes) => new Date(Date.now() - minutes * 60_000).toISOString();
  const added = (anonymousId, minutes) => ({ type: 'track', event: 'Product Added', anonymousId, messageId: `cart-${anonymousId}`,
    timestamp: ago(minutes), properties: { product_id: 'lamp', price: 30 } });
  await sendBatch(worker.url, [added('cart-fresh', 1), added('cart-stale', 3)]);
  const fresh = await profileWith('anonymousId', 'cart-fresh', 1);
  const stale = await profileWith('anonymousId', 'cart-stale', 1);
  assert.equal(fresh.computedTraits.cartValue, 30);
  assert.equal(fresh.computedTraits.cartAbandoned, false, 'one minute: within the two-minute window');
  assert.equal(stale.computedTraits.cartAbandoned, true, 'three minutes: past it (the default hour would not be)');
});

test('a cart that times out is found by search on time, with no new event (the alarm)', async () => {
  // Added 1 min 50 s ago with a two-minute window: it turns abandoned about 10 s from now.
  const addedAt = Date.now() - 110_000;
  await sendBatch(worker.url, [{ type: 'track', event: 'Product Added', anonymousId: 'cart-timer', messageId: 'cart-timer-1',
    timestamp: new Date(addedAt).toISOString(), properties: { product_id: 'lamp', price: 30 } }]);
  await profileWith('anonymousId', 'cart-timer', 1);
  const where = `where=computed.cartAbandoned=true&where=${encodeURIComponent('identifiers.anonymousId~cart-timer')}`;
  const found = () => admin(worker.url, `/v1/profiles?${where}`).then((r) => r.body.profiles);
  if (Date.now() < addedAt + 115_000) assert.deepEqual(await found(), [], 'not abandoned yet');
  const profiles = await eventually(async () => { const p = await found(); return p.length ? p : null; }, { timeout: 40_000, interval: 500 });
  assert.equal(profiles?.length, 1, 'the directory heard of the abandoned cart from the alarm');
  assert.ok(Date.now() >= addedAt + 120_000, 'not before its time');
});

test('export returns everything held; erasure removes the person everywhere and stays erased', async () => {
  const events = [
    { type: 'identify', anonymousId: 'erase-anon', userId: 'erase-user', messageId: 'x-1', timestamp: at(60), traits: { email: 'gone@example.com' } },
    { type: 'track', event: 'Order Completed', userId: 'erase-user', messageId: 'x-2', timestamp: at(61), properties: { order_id: 'X', revenue: 5 } },
  ];
  const before = await counters(worker.url);
  await sendBatch(worker.url, events);
  const profile = await profileWith('userId', 'erase-user', 2);
  await settled(worker.url, before.accepted + 2); // delivered, so archived

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
  const search = await admin(worker.url, `/v1/profiles?where=${encodeURIComponent('identifiers.userId~erase-user')}`);
  assert.deepEqual(search.body.profiles, [], 'gone from the directory');

  // Later events with those identifiers are dropped: the person is not re-created.
  const beforeReturn = await counters(worker.url);
  await sendBatch(worker.url, [{ type: 'track', event: 'Came Back', userId: 'erase-user', messageId: 'x-3', timestamp: at(62) },
    { type: 'page', anonymousId: 'erase-anon', messageId: 'x-4', timestamp: at(63) }]);
  const returned = await settled(worker.url, beforeReturn.accepted + 2);
  assert.equal(returned.suppressed - (beforeReturn.suppressed ?? 0), 2, 'both dropped as the erased person\'s');
  assert.equal((await lookup('userId', 'erase-user')).status, 404);
  assert.equal((await lookup('anonymousId', 'erase-anon')).status, 404);

  // The archive holds none of them: a replay brings nothing back.
  const beforeReplay = await counters(worker.url);
  const replay = await fetch(`${worker.url}/v1/admin/replay?from=${new Date(Date.now() - 3_600_000).toISOString()}&to=${new Date(Date.now() + 3_600_000).toISOString()}`,
    { method: 'POST', headers: { Authorization: 'Bearer demo-admin-token' } });
  assert.equal(replay.status, 200);
  assert.ok(await replayed(worker.url, beforeReplay, (await replay.json()).events), 'the replay was delivered');
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
  const before = await counters(worker.url);
  const first = await post();
  assert.equal(first.status, 207);
  const report = await first.json();
  assert.equal(report.imported, 2);
  assert.deepEqual(report.rowErrors.map((e) => e.line), [4, 5]);
  assert.equal((await post()).status, 207, 'the same file again');
  const profile = await profileWith('userId', 'pos-1', 2);
  await settled(worker.url, before.accepted + 4); // both files through the queue
  const final = (await lookup('email', 'pos@example.com')).body;
  assert.equal(final.id, profile.id);
  assert.equal(final.eventCount, 2, 'imported once, however often the file is sent');
  assert.equal(final.computedTraits.totalRevenue, 42.5);
  assert.equal(final.traits.name, 'Doe, Jo');
  const progress = await admin(worker.url, report.progress);
  assert.equal(progress.status, 200);
  assert.equal(progress.body.state, 'done');
  assert.equal(progress.body.eventsDelivered, 2);
});

test('a value the workspace blocks links nothing', async () => {
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: 'staff-1', messageId: 'w-1', timestamp: at(80), traits: { email: 'Test@Example.com' } },
    { type: 'identify', anonymousId: 'staff-2', messageId: 'w-2', timestamp: at(81), traits: { email: 'test@example.com' } },
  ]);
  const a = await profileWith('anonymousId', 'staff-1', 1);
  const b = await profileWith('anonymousId', 'staff-2', 1);
  assert.notEqual(a.id, b.id);
  assert.deepEqual(ids(a), ['anonymousId:staff-1']);
});

test('an identifier kind the source declares links profiles and looks them up', async () => {
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: 'store-tablet', messageId: 'k-1', timestamp: at(85), traits: { crm_id: 'C-77' } },
    { type: 'identify', anonymousId: 'home-laptop', messageId: 'k-2', timestamp: at(86), traits: { crm_id: 'C-77' } },
  ]);
  const profile = await eventually(async () => {
    const { status, body } = await lookup('crm_id', 'C-77');
    return status === 200 && body.eventCount === 2 ? body : null;
  }, { timeout: 15_000 });
  assert.deepEqual(ids(profile), ['anonymousId:home-laptop', 'anonymousId:store-tablet', 'crm_id:C-77']);
});

test('each trait value keeps its source and time', async () => {
  await sendBatch(worker.url, [
    { type: 'identify', userId: 'traced', messageId: 't-1', timestamp: at(90), traits: { plan: 'free', city: 'Oslo' } },
    { type: 'identify', userId: 'traced', messageId: 't-2', timestamp: at(92), traits: { plan: 'pro' } },
  ]);
  const profile = await profileWith('userId', 'traced', 2);
  assert.deepEqual(profile.traits, { plan: 'pro', city: 'Oslo' });
  assert.equal(profile.traitSources.plan.messageId, 't-2');
  assert.equal(profile.traitSources.plan.source, 'Demo shop');
  assert.equal(profile.traitSources.city.messageId, 't-1');
  assert.ok(Math.abs(Date.parse(profile.traitSources.plan.updatedAt) - Date.parse(at(92))) < 1000);
});

test('unmerge splits a wrongly joined identifier off with its own history, and it stays apart', async () => {
  // Bob typed his email on Alice's laptop; his phone browsing then came in through it.
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: 'alice-laptop', userId: 'alice-u', messageId: 'u-1', timestamp: at(100), traits: { name: 'Alice' } },
    { type: 'identify', anonymousId: 'alice-laptop', messageId: 'u-2', timestamp: at(101), traits: { email: 'bob@example.org', name: 'Bob' } },
  ]);
  await profileWith('userId', 'alice-u', 2);
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: 'bob-phone', messageId: 'u-3', timestamp: at(102), traits: { email: 'bob@example.org' } },
    { type: 'track', event: 'Order Completed', anonymousId: 'bob-phone', messageId: 'u-4', timestamp: at(103), properties: { order_id: 'B-1', revenue: 80 } },
  ]);
  const joined = await profileWith('userId', 'alice-u', 4);
  assert.deepEqual(ids(joined), ['anonymousId:alice-laptop', 'anonymousId:bob-phone', 'email:bob@example.org', 'userId:alice-u']);

  const post = (id, body) => fetch(`${worker.url}/v1/profiles/${id}/unmerge`, { method: 'POST',
    headers: { Authorization: 'Bearer demo-admin-token', 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal((await post(joined.id, { type: 'email', value: 'nobody@example.org' })).status, 409);
  assert.equal((await post(joined.id, { type: 'email', value: 'null' })).status, 400);
  const answer = await post(joined.id, { type: 'email', value: ' BOB@example.org' });
  assert.equal(answer.status, 200);
  const { detail } = await answer.json();
  assert.deepEqual(detail.movedIdentifiers.sort(), ['anonymousId:bob-phone', 'email:bob@example.org']);
  assert.equal(detail.keptApartFrom, 'userId:alice-u');

  const alice = (await lookup('userId', 'alice-u')).body;
  const bob = (await lookup('email', 'bob@example.org')).body;
  assert.equal(alice.id, joined.id);
  assert.equal(bob.id, detail.newProfile);
  assert.deepEqual(ids(alice), ['anonymousId:alice-laptop', 'userId:alice-u']);
  assert.deepEqual(alice.events.map((e) => e.messageId), ['u-1']);
  assert.deepEqual(bob.events.map((e) => e.messageId).sort(), ['u-2', 'u-3', 'u-4']);
  assert.equal(alice.traits.name, 'Alice', 'traits rebuilt from the events that stayed');
  assert.equal(bob.traits.name, 'Bob');
  assert.equal(alice.computedTraits.orderCount, 0);
  assert.equal(bob.computedTraits.totalRevenue, 80);
  const explained = (await admin(worker.url, `/v1/profiles/${alice.id}/explain`)).body;
  assert.equal(explained.unmerges[0].identifier, 'email:bob@example.org');
  assert.equal(explained.unmerges[0].movedTo, bob.id);

  // The same link again does not join them: the pair is kept apart.
  const beforeLink = await counters(worker.url);
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: 'alice-laptop', userId: 'alice-u', messageId: 'u-5', timestamp: at(104), traits: { email: 'bob@example.org' } }]);
  await profileWith('userId', 'alice-u', 2);
  await settled(worker.url, beforeLink.accepted + 1);
  assert.notEqual((await lookup('userId', 'alice-u')).body.id, (await lookup('email', 'bob@example.org')).body.id);
  const audit = (await admin(worker.url, '/v1/audit')).body;
  assert.ok(audit.some((e) => e.action === 'unmerge' && e.profile === alice.id));
});

test('an unmerged email leaves the traits too, even when the event that gave it stays', async () => {
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: 'carol-kiosk', userId: 'carol-u', messageId: 'cu-1', timestamp: at(110),
    traits: { email: 'dave@example.org', name: 'Carol' } }]);
  const joined = await profileWith('userId', 'carol-u', 1);
  assert.equal(joined.traits.email, 'dave@example.org');
  const res = await fetch(`${worker.url}/v1/profiles/${joined.id}/unmerge`, { method: 'POST',
    headers: { Authorization: 'Bearer demo-admin-token', 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'email', value: 'dave@example.org' }) });
  assert.equal(res.status, 200);
  const carol = (await lookup('userId', 'carol-u')).body;
  assert.equal(carol.traits.email, undefined, 'the email left with its identifier');
  assert.equal(carol.traits.name, 'Carol');
  assert.deepEqual(ids(carol), ['anonymousId:carol-kiosk', 'userId:carol-u']);
});

test('profiles are listed and searched by trait and computed trait, paged', async () => {
  const spender = (n, revenue, plan) => [
    { type: 'identify', userId: `spender-${n}`, messageId: `q-${n}-1`, timestamp: at(110), traits: { plan, segment: 'search-test' } },
    { type: 'track', event: 'Order Completed', userId: `spender-${n}`, messageId: `q-${n}-2`, timestamp: at(111), properties: { order_id: `Q-${n}`, revenue } },
  ];
  await sendBatch(worker.url, [...spender(1, 900, 'pro'), ...spender(2, 50, 'pro'), ...spender(3, 600, 'free')]);
  await profileWith('userId', 'spender-3', 2);
  const search = (query) => admin(worker.url, `/v1/profiles?${query}`);
  const found = await eventually(async () => {
    const { body } = await search('where=traits.segment=search-test&where=computed.totalRevenue>500');
    return body.profiles?.length === 2 ? body : null;
  });
  assert.deepEqual(found.profiles.map((p) => p.identifiers.userId[0]).sort(), ['spender-1', 'spender-3']);
  const pro = (await search('where=traits.segment=search-test&where=traits.plan=pro&where=computed.orderCount>=1')).body;
  assert.deepEqual(pro.profiles.map((p) => p.identifiers.userId[0]).sort(), ['spender-1', 'spender-2']);
  const email = (await search(`where=${encodeURIComponent('identifiers.userId~SPENDER-')}&limit=2`)).body;
  assert.equal(email.profiles.length, 2);
  const rest = (await search(`where=${encodeURIComponent('identifiers.userId~spender-')}&limit=2&cursor=${email.nextCursor}`)).body;
  assert.equal(rest.profiles.length, 1, 'the second page');
  assert.equal(rest.nextCursor, null);
  const all = (await search('limit=200')).body;
  assert.ok(all.profiles.length >= 3, 'no condition lists every profile');
  const bad = await search('where=computed.revenue>1');
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /no computed trait "revenue"/);
});

// Last: locally every Durable Object shares workerd's one thread, and creating hundreds of
// profiles at once holds up other requests for a while.
test('a large import travels in chunks, and its progress is visible until done', async () => {
  const rows = ['user_id,email,plan'];
  for (let i = 0; i < 300; i += 1) rows.push(`bulk-${i},bulk-${i}@example.net,${'gold '.repeat(20).trim()}`);
  const answer = await fetch(`${worker.url}/v1/import`, { method: 'POST',
    headers: { 'Content-Type': 'text/csv', Authorization: `Basic ${btoa('demo-write-key:')}` }, body: rows.join('\n') });
  assert.equal(answer.status, 200);
  const { job, progress, imported } = await answer.json();
  assert.equal(imported, 300);
  assert.match(job, /^imp-/);
  // The source's own write key may read it, as may the admin.
  // While the consumer works, local workerd (one thread for the Worker and every Durable
  // Object) answers late, and may drop a request: ask again rather than wait forever.
  const read = () => fetch(`${worker.url}${progress}`, { headers: { Authorization: `Basic ${btoa('demo-write-key:')}` },
    signal: AbortSignal.timeout(20_000) }).then((r) => r.json()).catch(() => null);
  const first = await eventually(read, { timeout: 90_000, interval: 500 });
  assert.ok(first.chunks > 1, `in chunks: ${JSON.stringify(first)}`);
  assert.equal(first.events, 300);
  const done = await eventually(async () => {
    const p = await read();
    return p?.state === 'done' ? p : null;
  }, { timeout: 120_000, interval: 500 });
  assert.equal(done.chunksDelivered, done.chunks);
  assert.equal(done.eventsDelivered, 300);
  assert.equal((await lookup('email', 'bulk-299@example.net')).body.traits.plan.startsWith('gold'), true);
  assert.equal((await fetch(`${worker.url}${progress}`)).status, 401, 'not without a key');
  const foreign = await fetch(`${worker.url}${progress}`, { headers: { Authorization: `Basic ${btoa('jpy-key:')}` } });
  assert.equal(foreign.status, 404, 'another source\'s key finds no such job');
  assert.equal((await admin(worker.url, progress)).body.eventsDelivered, 300, 'the admin reads it');
  assert.equal((await admin(worker.url, '/v1/import/imp-nothing')).status, 404);
});
