// Audiences against the Worker under `wrangler dev`: definitions refused with a reason, a
// shopper in Chromium entering and leaving an audience, a window that ends membership on
// time with no new event, backfill of profiles that existed before, two devices merging
// into one member, erasure, segment groups and the personalization API.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_TOKEN, WRITE_KEY, admin, counters, eventually, launchBrowser, sendBatch, settled, startWorker } from './harness.mjs';

let worker;
let browser;

before(async () => {
  worker = await startWorker();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await worker?.stop();
});

/** Calls the admin API with a method and a JSON body. */
async function call(method, path, body) {
  const res = await fetch(`${worker.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

/** Creates an audience and waits for its backfill to finish. */
async function define(definition) {
  const created = await call('POST', '/v1/audiences', definition);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const ready = await eventually(async () => {
    const { body } = await admin(worker.url, `/v1/audiences/${definition.key}`);
    return body.state === 'ready' ? body : null;
  }, { timeout: 30_000, interval: 200 });
  assert.ok(ready, `${definition.key} finishes its backfill`);
  return ready;
}

const lookup = async (anonymousId) => {
  const { status, body } = await admin(worker.url, `/v1/profiles/lookup?anonymousId=${encodeURIComponent(anonymousId)}`);
  return status === 200 ? body : null;
};
const audiencesOf = async (anonymousId) => ((await lookup(anonymousId))?.audiences ?? []).map((a) => a.key);
/** Waits until `anonymousId`'s profile is (or is not) in `key`. */
const becomes = (anonymousId, key, member, timeout = 15_000) => eventually(async () => (
  (await audiencesOf(anonymousId)).includes(key) === member
), { timeout, interval: 100 });
const now = (offsetMs = 0) => new Date(Date.now() + offsetMs).toISOString();
let n = 0;
const track = (anonymousId, event, properties = {}, extra = {}) => (
  { type: 'track', event, anonymousId, properties, messageId: `aud-${++n}`, timestamp: now(), ...extra });

test('a bad definition is refused with 400 naming the place; keys are unique and immutable', async () => {
  for (const [definition, at] of [
    [{ key: 'k1', where: { did: { event: 'A', within: '3 days' } } }, 'where.did.within'],
    [{ key: 'k2', where: { have: 'computed.lifetimeValue>5' } }, 'where.have'],
    [{ key: 'k3', where: { have: 'traits.plan=>pro' } }, 'where.have'],
    [{ key: 'k4', where: { all: [{ did: { event: 'A' } }, { sometimes: {} }] } }, 'where.all[1].sometimes'],
    [{ key: 'k5', where: { not: { not: { not: { not: { not: { not: { not: { have: 'traits.a' } } } } } } } } }, 'where.not.not.not.not.not.not.not'],
    [{ key: 'k6', where: { any: Array.from({ length: 40 }, () => ({ have: 'traits.a' })) } }, 'where.any[31]'],
    [{ key: 'Not A Key', where: { have: 'traits.a' } }, 'key'],
    [{ key: 'k7', where: { inAudience: 'nobody_defined_this' } }, 'where'],
  ]) {
    const { status, body } = await call('POST', '/v1/audiences', definition);
    assert.equal(status, 400, JSON.stringify(definition));
    assert.equal(body.error.reason, 'invalid_definition');
    assert.equal(body.error.at, at, body.error.message);
  }
  const bad = await call('POST', '/v1/audiences', 'not json at all');
  assert.equal(bad.status, 400);
  const unauthorized = await fetch(`${worker.url}/v1/audiences`, { method: 'POST', body: '{}' });
  assert.equal(unauthorized.status, 401);

  await define({ key: 'unique_one', where: { have: 'traits.plan=pro' } });
  assert.equal((await call('POST', '/v1/audiences', { key: 'unique_one', where: { have: 'traits.plan' } })).status, 409);
  const renamed = await call('PUT', '/v1/audiences/unique_one', { key: 'other_key', where: { have: 'traits.plan' } });
  assert.equal(renamed.status, 400);
  assert.equal(renamed.body.error.reason, 'key_is_immutable');
  // A cycle through inAudience is refused, naming it.
  await define({ key: 'cycle_a', where: { have: 'traits.x' } });
  await define({ key: 'cycle_b', where: { inAudience: 'cycle_a' } });
  const cycle = await call('PUT', '/v1/audiences/cycle_a', { where: { inAudience: 'cycle_b' } });
  assert.equal(cycle.status, 400);
  assert.match(cycle.body.error.message, /cycle/);
  // And one named by another cannot be deleted.
  assert.equal((await call('DELETE', '/v1/audiences/cycle_a')).status, 409);
});

test('a shopper in Chromium enters the abandoned-cart audience when adding to cart and leaves it by buying', async () => {
  await define({ key: 'cart_no_buy', name: 'Added to cart, no order', group: 'shop', personalize: true,
    where: { all: [
      { did: { event: 'Product Added', within: '1h' } },
      { didNot: { event: 'Order Completed', within: '1h' } },
      { have: 'computed.totalRevenue<500' }] } });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${worker.url}/product?id=stove`);
    await page.waitForFunction(() => window.cdp && window.cdp.loaded);
    const anonymousId = await page.evaluate(() => window.cdp.anonymousId());
    await page.click('#add');
    await page.evaluate(() => window.cdp.flush());
    assert.ok(await becomes(anonymousId, 'cart_no_buy', true), 'enters on adding to cart');
    // The page asks for its own audiences (the personalization API, through the tracker).
    assert.deepEqual(await page.evaluate(() => window.cdp.audiences()),
      { audiences: ['cart_no_buy'], groups: { shop: ['cart_no_buy'] } });
    const profile = await lookup(anonymousId);
    const entered = profile.events.find((e) => e.event === 'Audience Entered');
    assert.deepEqual(entered.properties, { audience_key: 'cart_no_buy', audience_name: 'Added to cart, no order', group: 'shop' });

    await page.goto(`${worker.url}/cart`);
    await page.click('#checkout');
    await page.waitForSelector('#email');
    await page.fill('#email', 'cart-shopper@example.com');
    await page.fill('#fullname', 'Cart Shopper');
    await page.click('button[type=submit]');
    await page.waitForSelector('#thanks:not([hidden])');
    await page.evaluate(() => window.cdp.flush());
    assert.ok(await becomes(anonymousId, 'cart_no_buy', false), 'leaves on buying');
    const after = await lookup(anonymousId);
    const exited = after.events.find((e) => e.event === 'Audience Exited');
    assert.equal(exited.properties.audience_key, 'cart_no_buy');
  } finally {
    await context.close();
  }
});

test('a within-10s audience is left on time with no new event', async () => {
  await define({ key: 'viewed_just_now', where: { did: { event: 'Product Viewed', within: '10s' } } });
  const viewedAt = Date.now();
  await sendBatch(worker.url, [track('anon-window', 'Product Viewed', {}, { timestamp: new Date(viewedAt).toISOString() })]);
  assert.ok(await becomes('anon-window', 'viewed_just_now', true), 'enters');
  assert.ok(await becomes('anon-window', 'viewed_just_now', false, 20_000), 'leaves by itself');
  const events = (await lookup('anon-window')).events;
  const exited = events.find((e) => e.event === 'Audience Exited');
  const lag = Date.parse(exited.timestamp) - (Date.parse(events.find((e) => e.event === 'Product Viewed').timestamp) + 10_000);
  assert.ok(lag >= 0, `not before the window ends (${lag} ms)`);
  console.log(`# time-based exit ${lag} ms after its instant`);
  // Back again: the entry is numbered after the exit (the exit kept its audience's row).
  await sendBatch(worker.url, [track('anon-window', 'Product Viewed')]);
  assert.ok(await becomes('anon-window', 'viewed_just_now', true), 'enters again');
  const changes = (await lookup('anon-window')).events.filter((e) => e.event?.startsWith('Audience '))
    .sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
  assert.deepEqual(changes.map((e) => [e.event, e.messageId.split('-').pop()]),
    [['Audience Entered', '1'], ['Audience Exited', '2'], ['Audience Entered', '3']]);
});

test('profiles that existed before an audience are backfilled; members page; sizes by group', async () => {
  const buyers = ['anon-bf-1', 'anon-bf-2', 'anon-bf-3'];
  const before = (await counters(worker.url)).accepted ?? 0;
  await sendBatch(worker.url, [
    ...buyers.map((a) => track(a, 'Order Completed', { total: 120, currency: 'EUR' })),
    track('anon-bf-browser', 'Product Viewed'),
  ]);
  await settled(worker.url, before + 4);
  const ready = await define({ key: 'bought_once', name: 'Bought', group: 'lifecycle',
    where: { did: { event: 'Order Completed', where: ['properties.total>100'] } } });
  assert.equal(ready.size, 3);
  assert.ok(ready.progress.evaluated >= 4, JSON.stringify(ready.progress));
  for (const a of buyers) assert.ok((await audiencesOf(a)).includes('bought_once'), a);
  assert.ok(!(await audiencesOf('anon-bf-browser')).includes('bought_once'), 'a browser who bought nothing is not in');
  const page1 = await admin(worker.url, '/v1/audiences/bought_once/members?limit=2');
  assert.equal(page1.body.profiles.length, 2);
  const page2 = await admin(worker.url, `/v1/audiences/bought_once/members?limit=2&cursor=${page1.body.nextCursor}`);
  assert.equal(page2.body.profiles.length, 1);
  assert.equal(page2.body.nextCursor, null);
  const group = await admin(worker.url, '/v1/segment-groups/lifecycle');
  assert.deepEqual(group.body.audiences.map((a) => [a.key, a.size]), [['bought_once', 3]]);
  // A group's key is taken once and never changes.
  assert.equal((await call('POST', '/v1/segment-groups', { key: 'lifecycle', name: 'Another' })).status, 409);
  assert.equal((await call('POST', '/v1/segment-groups', { key: 'newsletter', name: 'Newsletter' })).status, 201);
  const groups = await admin(worker.url, '/v1/segment-groups');
  assert.deepEqual(groups.body.groups.map((g) => g.key).sort(), ['lifecycle', 'newsletter', 'shop']);
  // The preview counts without saving.
  const preview = await call('POST', '/v1/audiences/preview', { where: { did: { event: 'Order Completed' } } });
  assert.equal(preview.status, 200);
  assert.ok(preview.body.size >= 3, JSON.stringify(preview.body));
  assert.equal((await admin(worker.url, '/v1/audiences/preview')).status, 404, 'nothing saved');
});

test('two devices that merge become one member', async () => {
  await define({ key: 'added_twice', where: { did: { event: 'Product Added', atLeast: 2, within: '1h' } } });
  await sendBatch(worker.url, [track('anon-phone', 'Product Added')]);
  await sendBatch(worker.url, [track('anon-laptop', 'Product Added')]);
  await eventually(async () => (await lookup('anon-phone')) && (await lookup('anon-laptop')), { timeout: 15_000 });
  assert.ok(!(await audiencesOf('anon-phone')).includes('added_twice'), 'one add each: neither device is in');
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: 'anon-phone', userId: 'user-two-devices', messageId: `aud-${++n}`, timestamp: now() },
    { type: 'identify', anonymousId: 'anon-laptop', userId: 'user-two-devices', messageId: `aud-${++n}`, timestamp: now() },
  ]);
  assert.ok(await becomes('anon-phone', 'added_twice', true), 'the merged profile is a member');
  const merged = await lookup('anon-phone');
  assert.equal((await lookup('anon-laptop')).id, merged.id);
  const members = await eventually(async () => {
    const { body } = await admin(worker.url, '/v1/audiences/added_twice/members');
    return body.profiles.length === 1 ? body.profiles : null;
  });
  assert.deepEqual(members.map((p) => p.id), [merged.id], 'one member, not two');
});

test('the personalization API answers a visitor their own personalized audiences and refuses what it must', async () => {
  await define({ key: 'hidden_buyers', where: { did: { event: 'Order Completed' } } });
  await sendBatch(worker.url, [track('anon-personal', 'Product Added'), track('anon-personal', 'Order Completed', { total: 9 })]);
  const url = (q) => `${worker.url}/v1/personalize?${q}`;
  const answer = await eventually(async () => {
    const res = await fetch(url(`anonymousId=anon-personal&writeKey=${WRITE_KEY}`));
    const body = await res.json();
    return body.audiences?.length === 0 && (await audiencesOf('anon-personal')).includes('hidden_buyers') ? { res, body } : null;
  }, { timeout: 15_000 });
  assert.ok(answer, 'the buyer is in hidden_buyers, which is not for personalization');
  assert.match(answer.res.headers.get('cache-control'), /max-age=5/);

  await sendBatch(worker.url, [track('anon-cart', 'Product Added')]);
  assert.ok(await becomes('anon-cart', 'cart_no_buy', true));
  const cart = await (await fetch(url(`anonymousId=anon-cart&writeKey=${WRITE_KEY}`))).json();
  assert.deepEqual(cart, { audiences: ['cart_no_buy'], groups: { shop: ['cart_no_buy'] } });
  const unknown = await (await fetch(url(`anonymousId=never-seen&writeKey=${WRITE_KEY}`))).json();
  assert.deepEqual(unknown, { audiences: [], groups: {} });

  const guessed = await fetch(url(`userId=user-two-devices&writeKey=${WRITE_KEY}`));
  assert.equal(guessed.status, 400);
  assert.equal((await guessed.json()).error.parameter, 'userId');
  assert.equal((await fetch(url(`email=a@example.com&writeKey=${WRITE_KEY}`))).status, 400);
  assert.equal((await fetch(url('anonymousId=anon-cart'))).status, 401);
  assert.equal((await fetch(url('anonymousId=anon-cart&writeKey=wrong'))).status, 401);
  assert.equal((await fetch(url(`writeKey=${WRITE_KEY}`))).status, 400);
  const otherOrigin = await fetch(url('anonymousId=anon-cart&writeKey=strict-key'), { headers: { Origin: 'https://evil.example' } });
  assert.equal(otherOrigin.status, 403);
});

test('an erased member leaves every audience and never comes back', async () => {
  await sendBatch(worker.url, [track('anon-erased', 'Product Added', {}, { userId: 'user-erased' })]);
  assert.ok(await becomes('anon-erased', 'cart_no_buy', true));
  const profile = await lookup('anon-erased');
  const erased = await call('DELETE', `/v1/profiles/${profile.id}`);
  assert.equal(erased.status, 200);
  const gone = await eventually(async () => {
    const { body } = await admin(worker.url, '/v1/audiences/cart_no_buy/members?limit=200');
    return body.profiles.every((p) => p.id !== profile.id);
  });
  assert.ok(gone, 'no longer listed');
  const before = (await counters(worker.url)).accepted ?? 0;
  await sendBatch(worker.url, [track('anon-erased', 'Product Added', {}, { userId: 'user-erased' })]);
  await settled(worker.url, before + 1);
  assert.equal(await lookup('anon-erased'), null, 'not re-created');
  const personal = await (await fetch(`${worker.url}/v1/personalize?anonymousId=anon-erased&writeKey=${WRITE_KEY}`)).json();
  assert.deepEqual(personal.audiences, []);
});

test('entries and exits reach the activation queue, and a deleted audience is left by its members', async () => {
  const changes = await eventually(async () => {
    const c = (await counters(worker.url)).membership_changes ?? 0;
    return c >= 6 ? c : null;
  }, { timeout: 15_000 });
  assert.ok(changes, 'membership changes counted by the activation consumer');
  await define({ key: 'short_lived', where: { did: { event: 'Product Added' } } });
  assert.ok(await becomes('anon-cart', 'short_lived', true));
  const deleted = await call('DELETE', '/v1/audiences/short_lived');
  assert.equal(deleted.status, 200);
  assert.ok(await becomes('anon-cart', 'short_lived', false, 30_000), 'members leave a deleted audience');
  assert.equal((await admin(worker.url, '/v1/audiences/short_lived')).status, 404);
});
