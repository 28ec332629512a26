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
