// A page view travels from the demo shop in Chromium through the Worker into a stored profile.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { admin, counters, eventually, launchBrowser, sendBatch, settled, startWorker } from './harness.mjs';

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

const lookup = (anonymousId) =>
  admin(worker.url, `/v1/profiles/lookup?anonymousId=${encodeURIComponent(anonymousId)}`);

const pageViews = async (anonymousId) => {
  const { status, body } = await lookup(anonymousId);
  return status === 200 ? body.events.filter((e) => e.type === 'page') : [];
};

test('a visit to the demo shop is stored as a page view in the visitor profile', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${worker.url}/`);
  const anonymousId = await page.waitForFunction(() => localStorage.getItem('cdp_aid')).then((h) => h.jsonValue());
  assert.match(anonymousId, /^[0-9a-f-]{36}$/);

  const views = await eventually(async () => { const v = await pageViews(anonymousId); return v.length ? v : null; });
  assert.equal(views?.length, 1, 'one page view stored');
  assert.equal(views[0].properties.url, `${worker.url}/`);
  assert.equal(views[0].properties.title, 'Edge Outfitters — demo shop');
  assert.equal(views[0].context.page.path, '/');
  assert.equal(views[0].context.library.name, 'edge-cdp-tracker');
  assert.ok(views[0].sentAt && views[0].timestamp && views[0].messageId);

  // A second visit, same browser: same anonymous id, a second page view in the same profile.
  await page.goto(`${worker.url}/product?id=stove`);
  const again = await page.waitForFunction(() => localStorage.getItem('cdp_aid')).then((h) => h.jsonValue());
  assert.equal(again, anonymousId);
  const both = await eventually(async () => { const v = await pageViews(anonymousId); return v.length >= 2 ? v : null; });
  assert.equal(both?.length, 2, 'two page views stored');
  assert.equal(both[0].context.page.path, '/product', 'newest first');
  const profile = (await lookup(anonymousId)).body;
  assert.deepEqual(profile.identifiers, [{ type: 'anonymousId', value: anonymousId }]);
  await page.close();
});

test('a replayed batch (same messageId) adds nothing', async () => {
  const event = { type: 'track', event: 'Product Viewed', anonymousId: 'replay-visitor',
    messageId: 'replay-1', properties: { product_id: 'stove' }, timestamp: new Date().toISOString() };
  const before = await counters(worker.url);
  for (let i = 0; i < 3; i++) {
    const res = await sendBatch(worker.url, [event]);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { success: true });
  }
  const body = await eventually(async () => { const r = await lookup('replay-visitor'); return r.status === 200 ? r.body : null; });
  const s = await settled(worker.url, before.accepted + 3); // every copy through the queue
  assert.equal(s.duplicates - (before.duplicates ?? 0), 2, 'two copies dropped');
  const after = (await lookup('replay-visitor')).body;
  assert.equal(after.eventCount, 1);
  assert.equal(body.events[0].messageId, 'replay-1');
});

test('identify traits and userId lookups reach the same stored profile', async () => {
  const res = await sendBatch(worker.url, [{ type: 'identify', userId: 'user-42', messageId: 'id-1',
    traits: { email: 'ada@example.com', plan: 'pro' } }]);
  assert.equal(res.status, 200);
  const body = await eventually(async () => {
    const r = await admin(worker.url, '/v1/profiles/lookup?userId=user-42');
    return r.status === 200 ? r.body : null;
  });
  assert.deepEqual(body?.traits, { email: 'ada@example.com', plan: 'pro' });
});

test('a wrong write key gets 401 and stores nothing', async () => {
  const before = await settled(worker.url);
  const res = await sendBatch(worker.url, [{ type: 'page', anonymousId: 'intruder', messageId: 'x-1' }], 'wrong-key');
  assert.equal(res.status, 401);
  assert.equal(res.body.error.reason, 'unknown_write_key');
  // The same with the key in the body instead of a header.
  const inBody = await fetch(`${worker.url}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ writeKey: 'wrong-key', batch: [{ type: 'page', anonymousId: 'intruder' }] }) });
  assert.equal(inBody.status, 401);
  // A valid event after them: once it is through, anything the refused ones queued would be.
  assert.equal((await sendBatch(worker.url, [{ type: 'page', anonymousId: 'after-intruder', messageId: 'x-2' }])).status, 200);
  const s = await settled(worker.url, before.accepted + 1);
  assert.equal(s.accepted, before.accepted + 1, 'only the valid event was accepted');
  assert.equal((await lookup('intruder')).status, 404);
});

test('malformed JSON gets 400 with a reason; a partly bad batch keeps its valid events', async () => {
  const bad = await sendBatch(worker.url, '{"batch": [');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.reason, 'invalid_json');

  const mixed = await sendBatch(worker.url, [
    { type: 'page', anonymousId: 'mixed-visitor', messageId: 'ok-1' },
    { type: 'track', anonymousId: 'mixed-visitor', messageId: 'no-name' },
  ]);
  assert.equal(mixed.status, 207);
  assert.deepEqual(mixed.body.rejected.map((r) => [r.index, r.messageId, r.reason]), [[1, 'no-name', 'missing_event_name']]);
  const mixedProfile = await eventually(async () => { const r = await lookup('mixed-visitor'); return r.status === 200 ? r.body : null; });
  assert.equal(mixedProfile?.eventCount, 1);
});

test('the admin API needs the admin token', async () => {
  const res = await fetch(`${worker.url}/v1/profiles/lookup?anonymousId=replay-visitor`);
  assert.equal(res.status, 401);
  const wrong = await fetch(`${worker.url}/v1/profiles/lookup?anonymousId=replay-visitor`,
    { headers: { Authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
});
