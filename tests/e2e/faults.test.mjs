// The fault matrix, against the Worker under `wrangler dev` (README, Reliability): one
// person whose deliveries keep failing among healthy ones, counters that reconcile after
// retries and replays, the dead-letter store and its replay, an alias after erasure, half
// an emoji, amounts that are not numbers, RFC 4180 quoting, refused cookie settings.
// Its own Worker: the counters are checked whole, so no other file's traffic may mix in.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_TOKEN, WRITE_KEY, admin, eventually, profileEvents, sendBatch, startWorker } from './harness.mjs';

let worker;

before(async () => { worker = await startWorker(); });
after(async () => { await worker?.stop(); });

const stats = async () => (await admin(worker.url, '/v1/stats')).body;
const post = (path) => fetch(`${worker.url}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
const page = (anonymousId, messageId) => ({ type: 'page', anonymousId, messageId });
const eventsOf = (anonymousId, count, timeout = 30_000) => eventually(async () => {
  const events = await profileEvents(worker.url, anonymousId);
  return events.length >= count ? events : null;
}, { timeout, interval: 250 });
/** Waits until the counters settle, `accepted` at least `atLeast` (the consumer counts what
 * the collector accepted): nothing accepted is unaccounted for. */
const settled = (atLeast = 0) => eventually(async () => {
  const s = await stats();
  return s.pending === 0 && (s.accepted ?? 0) >= atLeast ? s : null;
}, { timeout: 90_000, interval: 500 });

test('one person whose deliveries keep failing costs only their own events, which a dead-letter replay brings back', async () => {
  const healthy = Array.from({ length: 9 }, (_, i) => `healthy-${i}`);
  assert.equal((await post('/v1/admin/faults?anonymousId=poison&failures=1000')).status, 200);
  // 10 requests of 10 events, each with one event of every visitor, the poisoned one too.
  for (let b = 0; b < 10; b += 1) {
    const batch = [...healthy, 'poison'].map((id) => page(id, `${id}-${b}`));
    assert.equal((await sendBatch(worker.url, batch)).status, 200);
  }
  for (const id of healthy) assert.equal((await eventsOf(id, 10))?.length, 10, `${id}: all 10 stored`);
  const dead = await eventually(async () => {
    const { body } = await admin(worker.url, '/v1/admin/dead-letters');
    return body.events >= 10 ? body : null;
  }, { timeout: 120_000, interval: 1000 });
  assert.equal(dead?.events, 10, 'the poisoned visitor\'s 10 events, and nothing else, dead-lettered');
  assert.ok(dead.deadLetters.every((l) => l.source === WRITE_KEY && l.key.startsWith('dead/')));
  assert.equal((await admin(worker.url, '/v1/profiles/lookup?anonymousId=poison')).status, 404);
  const s = await settled(100);
  assert.equal(s.accepted, 100, 'accepted once per event, retries or not');
  assert.equal(s.delivered, 90);
  assert.equal(s.dead_lettered, 10);
  assert.ok(s.queue_retries > 0);

  // Mended, the dead letters are replayed: the events land once, and the counters agree.
  assert.equal((await post('/v1/admin/faults?anonymousId=poison&failures=0')).status, 200);
  const replay = await post('/v1/admin/dead-letters/replay');
  assert.equal(replay.status, 200);
  assert.equal((await replay.json()).events, 10);
  assert.equal((await eventsOf('poison', 10))?.length, 10);
  assert.equal((await admin(worker.url, '/v1/admin/dead-letters')).body.events, 0, 'the store is empty');
  const after = await settled();
  assert.equal(after.delivered, 100);
  assert.equal(after.dead_letters_replayed, 10);
  assert.equal(after.accepted, after.delivered + (after.duplicates ?? 0) + (after.suppressed ?? 0) + (after.unlinked ?? 0)
    + after.dead_lettered - after.dead_letters_replayed, 'accepted = delivered + duplicates + suppressed + unlinked + dead-lettered not replayed');
});

test('retries and an archive replay add nothing to the counters twice', async () => {
  const before = await settled();
  assert.equal((await post('/v1/admin/faults?anonymousId=flaky&failures=2')).status, 200);
  const from = new Date(Date.now() - 3_600_000).toISOString();
  assert.equal((await sendBatch(worker.url, [1, 2, 3, 4, 5].map((n) => page('flaky', `flaky-${n}`)))).status, 200);
  assert.equal((await eventsOf('flaky', 5))?.length, 5);
  const retried = await settled(before.accepted + 5);
  assert.equal(retried.accepted - before.accepted, 5);
  assert.equal(retried.delivered - before.delivered, 5);
  assert.ok(retried.queue_retries > before.queue_retries, 'it was retried');
  // The archive write follows delivery: wait for the object before replaying it.
  const to = new Date(Date.now() + 3_600_000).toISOString();
  const archived = () => post(`/v1/admin/replay?from=${from}&to=${to}`).then((r) => r.json());
  const report = await eventually(async () => { const r = await archived(); return r.events >= 105 ? r : null; }, { timeout: 20_000, interval: 1000 });
  assert.ok(report, 'the replay found the archived events');
  const replayed = await eventually(async () => {
    const s = await stats();
    return (s.replayed ?? 0) >= report.events ? s : null;
  }, { timeout: 60_000, interval: 500 });
  assert.ok(replayed, 'the replay was delivered');
  assert.equal(replayed.delivered, retried.delivered, 'a replay of stored events delivers nothing new');
  assert.equal(replayed.accepted, retried.accepted);
  assert.equal(replayed.pending, 0);
});

test('an alias after erasure re-creates nobody', async () => {
  await sendBatch(worker.url, [{ type: 'identify', userId: 'erased-u', anonymousId: 'erased-anon', messageId: 'ea-1', traits: { email: 'erased@example.com' } }]);
  const { body: profile } = await eventually(async () => {
    const r = await admin(worker.url, '/v1/profiles/lookup?userId=erased-u');
    return r.status === 200 ? r : null;
  });
  const erased = await fetch(`${worker.url}/v1/profiles/${profile.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(erased.status, 200);
  const before = await settled();
  // The erased user id comes back as an alias's previousId (read as an anonymous id), and
  // the erased email under another kind's name.
  await sendBatch(worker.url, [
    { type: 'alias', userId: 'new-u', previousId: 'erased-u', messageId: 'ea-2' },
    { type: 'identify', anonymousId: 'fresh-device', messageId: 'ea-3', traits: { email: 'Erased@Example.com' } },
  ]);
  const s = await settled(before.accepted + 2);
  assert.equal((s.suppressed ?? 0) - (before.suppressed ?? 0), 2, 'both dropped as an erased person\'s');
  for (const [kind, value] of [['anonymousId', 'erased-u'], ['userId', 'new-u'], ['anonymousId', 'fresh-device'], ['email', 'erased@example.com']]) {
    assert.equal((await admin(worker.url, `/v1/profiles/lookup?${kind}=${value}`)).status, 404, `${kind} ${value}`);
  }
});

test('erasure reaches the dead-letter store: a person\'s undelivered events are removed too', async () => {
  assert.equal((await sendBatch(worker.url, [page('doomed', 'dm-1')])).status, 200);
  const { body: profile } = await eventually(async () => {
    const r = await admin(worker.url, '/v1/profiles/lookup?anonymousId=doomed');
    return r.status === 200 ? r : null;
  });
  assert.equal((await post('/v1/admin/faults?anonymousId=doomed&failures=1000')).status, 200);
  const before = (await admin(worker.url, '/v1/admin/dead-letters')).body.events;
  assert.equal((await sendBatch(worker.url, [page('doomed', 'dm-2'), page('doomed', 'dm-3')])).status, 200);
  const dead = await eventually(async () => {
    const { body } = await admin(worker.url, '/v1/admin/dead-letters');
    return body.events >= before + 2 ? body : null;
  }, { timeout: 120_000, interval: 1000 });
  assert.ok(dead, 'the two events were dead-lettered');
  const erased = await fetch(`${worker.url}/v1/profiles/${profile.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(erased.status, 200);
  assert.equal((await erased.json()).detail.deadLetterEvents, 2);
  assert.equal((await admin(worker.url, '/v1/admin/dead-letters')).body.events, before, 'none of theirs is left to replay');
  assert.equal((await post('/v1/admin/faults?anonymousId=doomed&failures=0')).status, 200);
});

test('a person erased while their delivery is on its way gets nothing stored again', async () => {
  assert.equal((await sendBatch(worker.url, [page('erased-midway', 'mid-1')])).status, 200);
  const { body: profile } = await eventually(async () => {
    const r = await admin(worker.url, '/v1/profiles/lookup?anonymousId=erased-midway');
    return r.status === 200 ? r : null;
  });
  const before = await settled();
  // The next delivery resolves its page to the profile, then waits 8 s before writing it;
  // the erasure lands in that wait. The erased profile stores nothing: the page is
  // dropped as the erased person's.
  assert.equal((await post('/v1/admin/faults?anonymousId=erased-midway&pauseMs=8000')).status, 200);
  assert.equal((await sendBatch(worker.url, [page('erased-midway', 'mid-2')])).status, 200);
  await new Promise((r) => setTimeout(r, 3_000));
  const erased = await fetch(`${worker.url}/v1/profiles/${profile.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(erased.status, 200);
  const after = await settled(before.accepted + 1);
  assert.equal((after.delivered ?? 0) - (before.delivered ?? 0), 0, 'nothing stored in the erased profile');
  assert.equal((after.suppressed ?? 0) - (before.suppressed ?? 0), 1, 'the page dropped as the erased person\'s');
  assert.equal((await admin(worker.url, '/v1/profiles/lookup?anonymousId=erased-midway')).status, 404);
});

test('a change whose directory notice fails is sent again from the profile\'s outbox until it lands', async () => {
  assert.equal((await sendBatch(worker.url, [page('outbox-visitor', 'outbox-1')])).status, 200);
  const listed = () => admin(worker.url, '/v1/profiles?where=identifiers.anonymousId~outbox-visitor');
  const entry = await eventually(async () => (await listed()).body.profiles?.[0], { timeout: 15_000 });
  assert.ok(entry, 'listed in the directory');
  // Its next two directory writes fail; erasure then removes the profile, and its notice
  // to the directory goes through the outbox.
  assert.equal((await post(`/v1/admin/faults?directoryProfile=${entry.id}&failures=2`)).status, 200);
  const erased = await fetch(`${worker.url}/v1/profiles/${entry.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(erased.status, 200, 'the erasure itself is done');
  assert.equal((await listed()).body.profiles.length, 1, 'the first notice failed: still listed');
  const gone = await eventually(async () => (await listed()).body.profiles.length === 0, { timeout: 30_000, interval: 250 });
  assert.ok(gone, 'the outbox sent the removal again, after the faults, by itself');
});

test('half an emoji costs nothing: it reads as U+FFFD and its neighbours land', async () => {
  // JSON.stringify writes a lone surrogate as the escape \ud83d, as browsers do.
  const body = JSON.stringify({ batch: [
    { type: 'track', event: `Cut ${'😀'.slice(0, 1)}`, anonymousId: 'emoji', messageId: 'em-1' },
    page('emoji', 'em-2'),
  ] });
  assert.match(body, /\\ud83d/);
  const res = await sendBatch(worker.url, body);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const events = await eventsOf('emoji', 2);
  assert.equal(events.find((e) => e.messageId === 'em-1').event, 'Cut \ufffd');
});

test('amounts that are not numbers are refused with a reason, and the profile\'s totals stay right', async () => {
  const order = (n, properties) => ({ type: 'track', event: 'Order Completed', anonymousId: 'nan-buyer', messageId: `nan-${n}`,
    properties: { order_id: `N-${n}`, ...properties } });
  const res = await sendBatch(worker.url, [order(1, { revenue: 20 }), order(2, { revenue: 'NaN' }), order(3, { total: 'Infinity' }),
    order(4, { total: '-1e309' }), order(5, { revenue: '30' })]);
  assert.equal(res.status, 207);
  assert.deepEqual(res.body.rejected.map((r) => [r.index, r.reason]), [[1, 'invalid_field'], [2, 'invalid_field'], [3, 'invalid_field']]);
  assert.match(res.body.rejected[0].message, /properties\.revenue/);
  await eventsOf('nan-buyer', 2);
  const { body } = await admin(worker.url, '/v1/profiles/lookup?anonymousId=nan-buyer');
  assert.equal(body.computedTraits.orderCount, 2);
  assert.equal(body.computedTraits.totalRevenue, 50);
  assert.ok(body.computedTraits.firstSeen);
});

test('a CSV import with a quoted newline is read as RFC 4180 says', async () => {
  const csv = 'user_id,address,plan\r\nquoted-1,"1 Main St\r\nSpringfield",gold\r\nquoted-2,"said ""hi""",silver\r\n';
  const res = await fetch(`${worker.url}/v1/import`, { method: 'POST',
    headers: { 'Content-Type': 'text/csv', Authorization: `Basic ${btoa(`${WRITE_KEY}:`)}` }, body: csv });
  const answer = await res.json();
  assert.equal(res.status, 200, JSON.stringify(answer));
  assert.equal(answer.imported, 2);
  const profile = await eventually(async () => {
    const r = await admin(worker.url, '/v1/profiles/lookup?userId=quoted-1');
    return r.status === 200 ? r.body : null;
  });
  assert.equal(profile.traits.address, '1 Main St\r\nSpringfield');
  assert.equal(profile.traits.plan, 'gold');
});

test('cookie settings that would break the Set-Cookie header are refused at load, naming the field', async () => {
  const bad = await startWorker({ misconfigured: true,
    vars: { SOURCES: JSON.stringify([{ writeKey: 'k', cookie: { name: 'cdp_aid; Domain=evil.example' } }]) } });
  try {
    const res = await fetch(`${bad.url}/v1/batch`, { method: 'POST', body: '{"batch":[]}' });
    assert.equal(res.status, 500);
    assert.match((await res.json()).error.message, /cookie\.name/);
  } finally {
    await bad.stop();
  }
});
