// Reports against the Worker under `wrangler dev`: known events from five shoppers over
// two days (a campaign visit ending in an order sent twice, an abandoned cart, a late
// event, two devices merging, an erased person, a duplicate message and a refused event),
// then every report's numbers checked exactly against what those events imply.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_TOKEN, admin, eventually, sendBatch, settled, startWorker } from './harness.mjs';

let worker;
before(async () => {
  worker = await startWorker({ vars: { CART_ABANDON_MINUTES: '30', CURRENCY: 'EUR' } });
});
after(async () => {
  await worker?.stop();
});

const DAY = 86_400_000;
// Two whole UTC days ending at midnight today: every event falls on a known day and hour.
const today = Math.floor(Date.now() / DAY) * DAY;
const D = today - 2 * DAY;
const at = (day, hh, mm) => new Date(D + day * DAY + (hh * 60 + mm) * 60_000).toISOString();
const dayOf = (n) => new Date(D + n * DAY).toISOString().slice(0, 10);
let n = 0;
const event = (type, who, time, extra = {}) => ({ type, anonymousId: who, timestamp: time, messageId: `rep-${++n}`, ...extra });
const track = (who, name, time, properties = {}, context = {}) => event('track', who, time, { event: name, properties, context });
const page = (who, time, context) => event('page', who, time, { name: 'Home', context });

const landing = {
  sessionId: 1001,
  page: { url: 'https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=winter', referrer: 'https://mail.google.com/' },
};
const stove = { product_id: 'stove', category: 'Cooking', price: 100 };
const order1 = { order_id: 'o-1', revenue: 100, currency: 'EUR', products: [{ ...stove, quantity: 1 }] };
const first = [
  // Alice: a campaign visit, the whole funnel, the order sent twice (two messageIds).
  page('alice', at(0, 10, 5), landing),
  track('alice', 'Product Viewed', at(0, 10, 6), stove, { sessionId: 1001 }),
  track('alice', 'Product Added', at(0, 10, 7), stove, { sessionId: 1001 }),
  track('alice', 'Checkout Started', at(0, 10, 8), {}, { sessionId: 1001 }),
  track('alice', 'Order Completed', at(0, 10, 9), order1, { sessionId: 1001 }),
  track('alice', 'Order Completed', at(0, 10, 10), order1, { sessionId: 1001 }),
  // Bob: views, adds, leaves.
  page('bob', at(0, 11, 0), { sessionId: 2002 }),
  track('bob', 'Product Viewed', at(0, 11, 1), { product_id: 'pan', category: 'Cooking' }, { sessionId: 2002 }),
  track('bob', 'Product Added', at(0, 11, 2), { product_id: 'pan', category: 'Cooking' }, { sessionId: 2002 }),
  // Carol: views on the second day (her add comes late, below).
  track('carol', 'Product Viewed', at(1, 9, 0), { product_id: 'tent', category: 'Camping' }, { sessionId: 3003 }),
  // Dave: views on one device, adds and orders on another; identified on both, merged.
  track('dave-phone', 'Product Viewed', at(0, 12, 0), { product_id: 'lamp', category: 'Camping' }, { sessionId: 4004 }),
  track('dave-laptop', 'Product Added', at(0, 12, 5), { product_id: 'lamp', category: 'Camping', quantity: 2 }, { sessionId: 4005 }),
  track('dave-laptop', 'Order Completed', at(0, 12, 6), { order_id: 'o-2', revenue: 50, products: [{ product_id: 'lamp', category: 'Camping', quantity: 2 }] }, { sessionId: 4005 }),
  event('identify', 'dave-phone', at(0, 12, 10), { userId: 'dave', traits: { email: 'dave@example.com' } }),
  event('identify', 'dave-laptop', at(0, 12, 11), { userId: 'dave' }),
  // Erin: orders, then is erased: she leaves the reports.
  page('erin', at(0, 13, 0), { sessionId: 5005 }),
  track('erin', 'Order Completed', at(0, 13, 1), { order_id: 'o-3', revenue: 999 }, { sessionId: 5005 }),
];

async function report(path) {
  const { status, body } = await admin(worker.url, path);
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

const RANGE = `from=${dayOf(0)}&to=${dayOf(2)}&grain=day`;

test('every report agrees exactly with the events sent', async () => {
  let res = await sendBatch(worker.url, first);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  // The same message again, and a refused one (no event name).
  res = await sendBatch(worker.url, [first[1], { type: 'track', anonymousId: 'alice', messageId: 'rep-bad' }]);
  assert.equal(res.status, 207, 'one of the two refused');
  await settled(worker.url, first.length + 1);
  // Carol's add arrives late, after the rest was delivered: it lands on day 2 all the same.
  await sendBatch(worker.url, [track('carol', 'Product Added', at(1, 9, 5), { product_id: 'tent', category: 'Camping' }, { sessionId: 3003 })]);
  await settled(worker.url, first.length + 2);
  const erin = (await admin(worker.url, '/v1/profiles/lookup?anonymousId=erin')).body;
  const erased = await fetch(`${worker.url}/v1/profiles/${erin.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(erased.status, 200);

  // Merges and erasure reach the directory through the profiles' outboxes: wait for them.
  const revenue = await eventually(async () => {
    const r = await report(`/v1/reports/revenue?${RANGE}`);
    const overview = await report(`/v1/reports/overview?${RANGE}`);
    return r.revenue.total === 150 && overview.profilesCreated.total === 4 ? r : null;
  }, { timeout: 20_000, interval: 250 });
  assert.ok(revenue, 'the merge and the erasure reach the reports');
  assert.deepEqual(revenue.range.buckets, [`${dayOf(0)}T00:00:00.000Z`, `${dayOf(1)}T00:00:00.000Z`]);
  assert.equal(revenue.currency, 'EUR');
  assert.deepEqual(revenue.revenue, { total: 150, series: [150, 0] });
  // o-1 sent twice counts once.
  assert.deepEqual(revenue.orders, { total: 2, series: [2, 0] });
  assert.deepEqual(revenue.averageOrderValue, { total: 75, series: [75, null] });

  const funnel = await report(`/v1/reports/funnel?${RANGE}`);
  assert.deepEqual(funnel.steps.map((s) => [s.name, s.count]), [
    ['Product Viewed', 4], ['Product Added', 4], ['Checkout Started', 1], ['Order Completed', 1],
  ]);
  assert.equal(funnel.steps[2].fromPrevious, 0.25);
  // Dave's view and add were on two devices: merged, they are one person's steps in order.
  const custom = await report(`/v1/reports/funnel?${RANGE}&step=Product%20Viewed&step=Order%20Completed&window=1h`);
  assert.deepEqual(custom.steps.map((s) => s.count), [4, 2]);
  const tight = await report(`/v1/reports/funnel?${RANGE}&step=Product%20Viewed&step=Order%20Completed&window=5m`);
  assert.deepEqual(tight.steps.map((s) => s.count), [4, 1]);

  const carts = await report(`/v1/reports/carts?${RANGE}`);
  assert.equal(carts.abandonAfterMinutes, 30);
  assert.deepEqual(carts.started, { total: 4, series: [3, 1] });
  assert.deepEqual(carts.ordered, { total: 2, series: [2, 0] });
  assert.deepEqual(carts.abandoned, { total: 2, series: [1, 1] });
  assert.deepEqual(carts.abandonmentRate, { total: 0.5, series: [0.333333, 1] });

  const campaigns = await report(`/v1/reports/campaigns?${RANGE}`);
  assert.deepEqual(campaigns.visits, { total: 5, series: [4, 1] });
  assert.deepEqual(campaigns.campaigns, [
    { source: '(none)', medium: '(none)', campaign: '(none)', visits: 4, orders: 1, revenue: 50 },
    { source: 'newsletter', medium: 'email', campaign: 'winter', visits: 1, orders: 1, revenue: 100 },
  ]);
  assert.deepEqual(campaigns.referrers, [
    { referrer: '(direct)', direct: true, visits: 4, orders: 1, revenue: 50 },
    { referrer: 'mail.google.com', direct: false, visits: 1, orders: 1, revenue: 100 },
  ]);

  const products = await report(`/v1/reports/products?${RANGE}`);
  assert.deepEqual(products.products, [
    { product: 'lamp', views: 1, added: 2, ordered: 2 },
    { product: 'stove', views: 1, added: 1, ordered: 1 },
    { product: 'pan', views: 1, added: 1, ordered: 0 },
    { product: 'tent', views: 1, added: 1, ordered: 0 },
  ]);
  assert.deepEqual(products.categories, [
    { category: 'Camping', views: 2, orders: 1 },
    { category: 'Cooking', views: 2, orders: 1 },
  ]);

  const overview = await report(`/v1/reports/overview?${RANGE}`);
  // Alice 6, Bob 3, Carol 2, Dave 5; Erin erased, the duplicate dropped.
  assert.deepEqual(overview.events.byType, {
    identify: { total: 2, series: [2, 0] },
    page: { total: 2, series: [2, 0] },
    track: { total: 12, series: [10, 2] },
  });
  assert.equal(overview.events.total, 16);
  assert.deepEqual(overview.profilesCreated, { total: 4, series: [3, 1] });
  // The pipeline's counters are by the hour they were handled: today, after the range.
  const now = await report('/v1/reports/overview?range=24h');
  assert.equal(now.pipeline.accepted.total, first.length + 2);
  assert.equal(now.pipeline.duplicates.total, 1);
  assert.equal(now.pipeline.merges.total, 1);
  assert.deepEqual(now.pipeline.rejected.byReason, { missing_event_name: 1 });
  assert.equal(now.deadLetters, 0);

  const names = await report(`/v1/reports/events?${RANGE}`);
  assert.deepEqual(names.events.map((e) => [e.name, e.count]), [
    ['Product Added', 4], ['Product Viewed', 4], ['Order Completed', 3], ['Checkout Started', 1],
  ]);
  // The event schema: each name with the property keys its events carried.
  assert.deepEqual(names.events.find((e) => e.name === 'Product Added').properties, ['category', 'price', 'product_id', 'quantity']);
  assert.deepEqual(names.events.find((e) => e.name === 'Checkout Started').properties, []);
});

test('a report refuses a bad range, funnel or limit with a reason, and a caller with no token', async () => {
  for (const [path, reason, says] of [
    ['/v1/reports/revenue?range=soon', 'invalid_range', 'range must be'],
    ['/v1/reports/revenue?from=2026-13-45', 'invalid_range', 'from must be'],
    ['/v1/reports/carts?range=90d&grain=hour', 'invalid_range', 'grain=day'],
    ['/v1/reports/funnel?window=forever', 'invalid_funnel', 'window must be'],
    ['/v1/reports/funnel?step=', 'invalid_funnel', 'a step must name'],
    ['/v1/reports/products?limit=0', 'invalid_limit', 'limit must be'],
  ]) {
    const { status, body } = await admin(worker.url, path);
    assert.equal(status, 400, path);
    assert.equal(body.error?.reason ?? body.reason, reason, JSON.stringify(body));
    assert.match(JSON.stringify(body), new RegExp(says), path);
  }
  const anonymous = await fetch(`${worker.url}/v1/reports/overview`);
  assert.equal(anonymous.status, 401);
});
