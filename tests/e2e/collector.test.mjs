// The collector against the Worker under `wrangler dev`: a real Segment client library,
// a malformed corpus, duplicates, origins and keys, consent and bot policies, enrichment,
// queue retries, the archive and its replay, counters.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { Analytics } from '@segment/analytics-node';
import { ADMIN_TOKEN, WRITE_KEY, admin, counters, eventually, profileEvents, replayed, sendBatch, settled, startWorker } from './harness.mjs';

let worker;

before(async () => { worker = await startWorker(); });
after(async () => { await worker?.stop(); });

const stats = async () => (await admin(worker.url, '/v1/stats')).body;
const eventsOf = (anonymousId, count) => eventually(async () => {
  const events = await profileEvents(worker.url, anonymousId);
  return events.length >= count ? events : null;
});
const page = (anonymousId, messageId, extra = {}) => ({ type: 'page', anonymousId, messageId, ...extra });

test('events from the real Segment Node.js library land unchanged', async () => {
  const analytics = new Analytics({ writeKey: WRITE_KEY, host: worker.url, flushAt: 3, maxRetries: 2 });
  const errors = [];
  analytics.on('error', (e) => errors.push(e));
  analytics.identify({ anonymousId: 'node-lib', traits: { plan: 'gold' } });
  analytics.track({ anonymousId: 'node-lib', event: 'Order Completed', properties: { order_id: 'N-1', revenue: 42 } });
  analytics.page({ anonymousId: 'node-lib', name: 'Pricing' });
  await analytics.closeAndFlush({ timeout: 10_000 });
  assert.deepEqual(errors, []);
  const events = await eventsOf('node-lib', 3);
  assert.deepEqual(events.map((e) => e.type).sort(), ['identify', 'page', 'track']);
  const order = events.find((e) => e.type === 'track');
  assert.equal(order.properties.revenue, 42);
  assert.equal(order.context.library.name, '@segment/analytics-node');
});

test('a malformed corpus gets 4xx with reasons while the valid events of a batch land', async () => {
  const cases = [
    ['invalid JSON', '{"batch": [', 400, 'invalid_json'],
    ['not an object', '[1, 2]', 400, 'not_an_object'],
    ['no batch', '{"writeKey": "x"}', 400, 'missing_batch'],
    ['10 MB body', JSON.stringify({ batch: [page('big', 'big-1', { properties: { x: 'y'.repeat(10 * 1024 * 1024) } })] }), 413, 'body_too_large'],
    ['gzip bomb', gzipSync(Buffer.alloc(50 * 1024 * 1024, 32)), 413, 'body_too_large', { 'Content-Encoding': 'gzip' }],
    ['broken gzip', new Uint8Array([0x1f, 0x8b, 1, 2, 3]), 400, 'invalid_gzip', { 'Content-Encoding': 'gzip' }],
    ['unknown encoding', '{}', 415, 'unsupported_encoding', { 'Content-Encoding': 'br' }],
  ];
  for (const [name, body, status, reason, headers] of cases) {
    const res = await sendBatch(worker.url, typeof body === 'string' ? body : new Uint8Array(body), WRITE_KEY, headers);
    assert.equal(res.status, status, name);
    assert.equal(res.body.error.reason, reason, name);
    assert.ok(res.body.error.message.length > 10, `${name}: a message a person can act on`);
  }

  const deep = JSON.parse(`${'['.repeat(40)}1${']'.repeat(40)}`);
  const mixed = JSON.stringify({ batch: [
    page('corpus', 'ok-1'),
    { type: 'track', anonymousId: 'corpus', messageId: 'bad-type', properties: 'not an object', event: 'X' },
    { type: 'track', anonymousId: 'corpus', messageId: 'huge', event: 'X', properties: { s: 'z'.repeat(40 * 1024) } },
    { type: 'track', anonymousId: 'corpus', messageId: 'deep', event: 'X', properties: { deep } },
    { type: 'track', anonymousId: 'corpus', messageId: 'bad-utf8', event: 'BADUTF8' },
    { type: 'track', anonymousId: 'corpus', messageId: 'bad-time', event: 'X', timestamp: 'yesterday' },
    page('corpus', 'ok-2'),
  ] });
  // Put one invalid UTF-8 byte inside the fifth event's name.
  const bytes = Buffer.from(mixed);
  bytes[bytes.indexOf('BADUTF8') + 3] = 0xff;
  const res = await sendBatch(worker.url, new Uint8Array(bytes));
  assert.equal(res.status, 207);
  assert.deepEqual(res.body.rejected.map((r) => [r.index, r.messageId, r.reason]), [
    [1, 'bad-type', 'invalid_field'], [2, 'huge', 'event_too_large'], [3, 'deep', 'too_deep'],
    [4, 'bad-utf8', 'invalid_utf8'], [5, 'bad-time', 'invalid_timestamp'],
  ]);
  const stored = await eventsOf('corpus', 2);
  assert.deepEqual(stored.map((e) => e.messageId).sort(), ['ok-1', 'ok-2']);

  const gz = await sendBatch(worker.url, new Uint8Array(gzipSync(JSON.stringify({ batch: [page('gzipped', 'gz-1')] }))), WRITE_KEY,
    { 'Content-Encoding': 'gzip' });
  assert.equal(gz.status, 200, 'a gzip body is read');
  await eventsOf('gzipped', 1);
});

test('a batch sent three times is stored once, and the duplicates are counted', async () => {
  const before = (await stats()).duplicates ?? 0;
  const batch = [page('thrice', 't-1'), { type: 'track', event: 'Thrice', anonymousId: 'thrice', messageId: 't-2' }];
  for (let i = 0; i < 3; i++) assert.equal((await sendBatch(worker.url, batch)).status, 200);
  await eventsOf('thrice', 2);
  const counted = await eventually(async () => { const s = await stats(); return (s.duplicates ?? 0) - before >= 4 ? s : null; });
  assert.equal((counted?.duplicates ?? 0) - before, 4);
  assert.equal((await profileEvents(worker.url, 'thrice')).length, 2);
});

test('keys and origins: wrong key 401, disallowed origin 403, preflights for allowed origins only', async () => {
  assert.equal((await sendBatch(worker.url, [page('k', 'k-1')], 'no-such-key')).status, 401);
  const refused = await sendBatch(worker.url, [page('origin-test', 'o-1')], 'strict-key', { Origin: 'https://evil.example' });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error.reason, 'origin_not_allowed');
  // readable by the page (its tracker settles the batch), and nothing was stored
  assert.equal(refused.headers.get('access-control-allow-origin'), 'https://evil.example');
  const allowed = await sendBatch(worker.url, [page('origin-test', 'o-2')], 'strict-key', { Origin: 'https://shop.example' });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://shop.example');
  const preflight = (origin) => fetch(`${worker.url}/v1/batch`, { method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' } });
  assert.equal((await preflight('https://shop.example')).status, 204);
  const events = await eventsOf('origin-test', 1);
  assert.deepEqual(events.map((e) => e.messageId), ['o-2']);
});

test('consent and bot policies drop events and count them', async () => {
  const before = await stats();
  const withConsent = { context: { consent: { categoryPreferences: { analytics: true } } } };
  const res = await sendBatch(worker.url, [page('consent-test', 'c-no'), page('consent-test', 'c-yes', withConsent)], 'consent-key');
  assert.equal(res.status, 200);
  const kept = await eventsOf('consent-test', 1);
  assert.deepEqual(kept.map((e) => e.messageId), ['c-yes']);

  const bot = await sendBatch(worker.url, [page('bot-test', 'b-1')], 'nobots-key', { 'User-Agent': 'Mozilla/5.0 (compatible; Googlebot/2.1)' });
  assert.equal(bot.status, 200, 'a bot is not told it was dropped');
  const human = await sendBatch(worker.url, [page('bot-test', 'b-2')], 'nobots-key',
    { 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36' });
  assert.equal(human.status, 200);
  const humans = await eventsOf('bot-test', 1);
  assert.deepEqual(humans.map((e) => e.messageId), ['b-2']);
  assert.equal(humans[0].context.ip, undefined, 'ip: drop leaves no address');
  const after = await eventually(async () => { const s = await stats(); return (s.bots_dropped ?? 0) > (before.bots_dropped ?? 0) ? s : null; });
  assert.equal((after.consent_dropped ?? 0) - (before.consent_dropped ?? 0), 1);
  assert.equal((after.bots_dropped ?? 0) - (before.bots_dropped ?? 0), 1);
});

test('events are enriched: geography, anonymised IP, user agent, campaign, referrer, clock skew', async () => {
  const now = Date.now();
  const body = JSON.stringify({ batch: [{
    type: 'page', anonymousId: 'enriched', messageId: 'e-1', timestamp: new Date(now - 65_000).toISOString(),
    context: { page: { url: 'https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=winter', referrer: 'https://www.google.com/' } },
  }], sentAt: new Date(now - 60_000).toISOString() }); // the device clock is a minute behind
  const res = await sendBatch(worker.url, body, WRITE_KEY, {
    'X-CDP-Dev-Geo': 'country=DE;region=Berlin;city=Berlin;postalCode=10115;timezone=Europe/Berlin;latitude=52.5208;longitude=13.4094;asn=3320',
    'CF-Connecting-IP': '203.0.113.77',
    'User-Agent': 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1',
  });
  assert.equal(res.status, 200);
  const [event] = await eventsOf('enriched', 1);
  const ctx = event.context;
  assert.equal(ctx.location.country, 'DE');
  assert.equal(ctx.location.city, 'Berlin');
  assert.equal(ctx.location.latitude, 52.5, 'coordinates coarsened');
  assert.equal(ctx.ip, '203.0.113.0', 'the address anonymised to its /24');
  assert.equal(ctx.device.type, 'mobile');
  assert.equal(ctx.os.name, 'iOS');
  assert.equal(ctx.campaign.source, 'newsletter');
  assert.equal(ctx.campaign.name, 'winter');
  assert.equal(ctx.referrerType, 'email', 'the campaign\'s medium wins over the search engine that referred');
  const corrected = Date.parse(event.timestamp);
  assert.ok(Math.abs(corrected - (Date.parse(event.receivedAt) - 5_000)) < 50, 'event time corrected for the device clock');
  assert.ok(Math.abs(event.skewMs - 60_000) < 2_000, 'skew kept');
});

test('a failing profile write is retried by the queue and nothing is lost', async () => {
  const before = (await stats()).queue_retries ?? 0;
  const fault = await fetch(`${worker.url}/v1/admin/faults?anonymousId=flaky&failures=2`, {
    method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(fault.status, 200);
  assert.equal((await sendBatch(worker.url, [page('flaky', 'f-1'), page('flaky', 'f-2')])).status, 200);
  const events = await eventsOf('flaky', 2);
  assert.deepEqual(events.map((e) => e.messageId).sort(), ['f-1', 'f-2']);
  // Both failures are absorbed before the queue retries the message once: the batch, then
  // the visitor's events on their own, fail; the retry succeeds.
  const s = await eventually(async () => { const now = await stats(); return (now.queue_retries ?? 0) - before >= 1 ? now : null; });
  assert.ok(s, 'the retry counted');
});

test('the first-party collector refreshes the anonymous-id cookie from the server', async () => {
  const res = await sendBatch(worker.url, [page('cookie-visitor', 'ck-1')], WRITE_KEY, { Origin: worker.url });
  const cookie = res.headers.get('set-cookie') ?? '';
  assert.match(cookie, /^cdp_aid=cookie-visitor; Max-Age=31536000; Path=\/; SameSite=Lax/);
  const thirdParty = await sendBatch(worker.url, [page('cookie-visitor', 'ck-2')], WRITE_KEY, { Origin: 'https://elsewhere.example' });
  assert.equal(thirdParty.headers.get('set-cookie'), null, 'never from another site');
});

test('accepted batches are archived to R2 and a replay re-ingests them idempotently', async () => {
  const from = new Date(Date.now() - 3_600_000).toISOString();
  const before = await counters(worker.url);
  assert.equal((await sendBatch(worker.url, [page('archived', 'a-1'), page('archived', 'a-2')])).status, 200);
  await settled(worker.url, before.accepted + 2); // delivered, so archived (the write precedes the count)
  const to = new Date(Date.now() + 3_600_000).toISOString();
  const beforeReplay = await counters(worker.url);
  const replay = await fetch(`${worker.url}/v1/admin/replay?from=${from}&to=${to}`, {
    method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(replay.status, 200);
  const report = await replay.json();
  assert.ok(report.objects >= 1 && report.events >= 2, JSON.stringify(report));
  const after = await replayed(worker.url, beforeReplay, report.events);
  assert.ok(after, 'the replay was delivered');
  assert.equal(after.delivered, beforeReplay.delivered, 'the replayed events were all stored already');
  assert.deepEqual((await profileEvents(worker.url, 'archived')).map((e) => e.messageId), ['a-1', 'a-2'], 'replay adds nothing twice');
  const bad = await fetch(`${worker.url}/v1/admin/replay?from=yesterday`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(bad.status, 400);
});

test('the counters need the admin token and report the pipeline', async () => {
  assert.equal((await fetch(`${worker.url}/v1/stats`)).status, 401);
  // Exact deltas, whatever ran before: one valid event twice (a duplicate) and one bad body.
  const before = await settled(worker.url);
  assert.equal((await sendBatch(worker.url, [page('counted', 'cnt-1')])).status, 200);
  assert.equal((await sendBatch(worker.url, [page('counted', 'cnt-1')])).status, 200);
  assert.equal((await sendBatch(worker.url, '{"batch": [')).status, 400);
  await settled(worker.url, before.accepted + 2);
  const names = ['accepted', 'delivered', 'duplicates', 'rejected.invalid_json'];
  // The refusal is counted beside the answer, not through the queue: it may trail a little.
  const deltas = async () => { const s = await counters(worker.url); return names.map((n) => (s[n] ?? 0) - (before[n] ?? 0)); };
  const seen = await eventually(async () => { const d = await deltas(); return d[3] >= 1 ? d : null; });
  assert.deepEqual(seen, [2, 1, 1, 1]);
});

test('locally an event without the geography header has no location (not wrangler\'s placeholder)', async () => {
  assert.equal((await sendBatch(worker.url, [page('no-geo', 'ng-1')])).status, 200);
  const [event] = await eventsOf('no-geo', 1);
  assert.equal(event.context?.location, undefined, JSON.stringify(event.context?.location));
});

test('the short paths Segment\'s clients post to take their bodies, with the write key inside', async () => {
  const post = (path, body, headers = {}) => fetch(`${worker.url}${path}`, {
    method: 'POST', headers: { 'Content-Type': 'text/plain', ...headers }, body: JSON.stringify(body) });
  const sentAt = new Date().toISOString();
  const one = (type, messageId, extra) => ({ type, messageId, anonymousId: 'short-paths', writeKey: WRITE_KEY, sentAt,
    _metadata: { bundled: ['Segment.io'], unbundled: [] }, integrations: {}, ...extra });
  for (const [path, event] of [
    ['/v1/t', one('track', 'sp-t', { event: 'Signed Up' })],
    ['/v1/p', one('page', 'sp-p', { name: 'Home' })],
    ['/v1/i', one('identify', 'sp-i', { traits: { plan: 'pro' } })],
    ['/v1/g', one('group', 'sp-g', { groupId: 'acme' })],
    ['/v1/s', one('screen', 'sp-s', { name: 'Cart' })],
  ]) {
    const res = await post(path, event);
    assert.equal(res.status, 200, `${path}: ${await res.text()}`);
  }
  const batch = await post('/v1/b', { writeKey: WRITE_KEY, sentAt, batch: [{ type: 'track', event: 'Batched', messageId: 'sp-b', anonymousId: 'short-paths' }] });
  assert.equal(batch.status, 200);
  // gzip, as analytics-kotlin and the classic Android library send it
  const gz = await fetch(`${worker.url}/v1/b`, { method: 'POST', headers: { 'Content-Type': 'text/plain', 'Content-Encoding': 'gzip' },
    body: gzipSync(JSON.stringify({ writeKey: WRITE_KEY, sentAt, batch: [{ type: 'track', event: 'Gzipped', messageId: 'sp-z', anonymousId: 'short-paths' }] })) });
  assert.equal(gz.status, 200);
  const events = await eventsOf('short-paths', 7);
  assert.deepEqual(events.map((e) => e.messageId).sort(), ['sp-b', 'sp-g', 'sp-i', 'sp-p', 'sp-s', 'sp-t', 'sp-z']);
  assert.deepEqual(events.map((e) => e.type).sort(), ['group', 'identify', 'page', 'screen', 'track', 'track', 'track']);
  // analytics.js's metrics about itself: read and dropped, never stored
  const metrics = await post('/v1/m', { series: [{ type: 'Counter', metric: 'analytics_js.invoke', value: 1, tags: { library: 'analytics.js' } }] },
    { Origin: 'https://shop.example' });
  assert.equal(metrics.status, 200);
  assert.equal(metrics.headers.get('access-control-allow-origin'), 'https://shop.example');
});

test('Segment clients read their settings from the collector, pointing them back at it', async () => {
  const res = await fetch(`${worker.url}/v1/projects/${WRITE_KEY}/settings`, { headers: { Origin: 'https://shop.example' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://shop.example');
  const settings = await res.json();
  assert.deepEqual(settings.integrations, { 'Segment.io': { apiKey: WRITE_KEY, apiHost: `${new URL(worker.url).host}/v1`, protocol: 'http' } });
  assert.equal((await fetch(`${worker.url}/v1/projects/nobody/settings`)).status, 404);
  const foreign = await fetch(`${worker.url}/v1/projects/strict-key/settings`, { headers: { Origin: 'https://elsewhere.example' } });
  assert.equal(foreign.status, 403);
});

test('a refusal of an origin is readable by the page, so its tracker settles instead of retrying', async () => {
  const res = await sendBatch(worker.url, [page('refused', 'rf-1')], 'strict-key', { Origin: 'https://elsewhere.example' });
  assert.equal(res.status, 403);
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://elsewhere.example');
  assert.equal(res.body.error.reason, 'origin_not_allowed');
});

test('a known path with the wrong method gets 405 with Allow', async () => {
  for (const [method, path, allow] of [
    ['PUT', '/v1/batch', 'POST, OPTIONS'],
    ['GET', '/v1/t', 'POST, OPTIONS'],
    ['POST', '/v1/stats', 'GET, OPTIONS'],
    ['PATCH', '/v1/profiles/p-1', 'GET, DELETE, OPTIONS'],
    ['GET', '/v1/profiles/p-1/unmerge', 'POST, OPTIONS'],
  ]) {
    const res = await fetch(`${worker.url}${path}`, { method, headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(res.headers.get('allow'), allow, `${method} ${path}`);
    assert.equal((await res.json()).error.reason, 'method_not_allowed');
  }
  assert.equal((await fetch(`${worker.url}/v1/nothing-here`)).status, 404);
});

test('the Bearer scheme is case-insensitive', async () => {
  for (const scheme of ['bearer', 'BEARER']) {
    const res = await fetch(`${worker.url}/v1/stats`, { headers: { Authorization: `${scheme} ${ADMIN_TOKEN}` } });
    assert.equal(res.status, 200, scheme);
  }
});

test('a query parameter that cannot be used is a 400 naming it', async () => {
  assert.equal((await sendBatch(worker.url, [page('query-params', 'qp-1')])).status, 200);
  await eventsOf('query-params', 1);
  const { body: profile } = await admin(worker.url, '/v1/profiles/lookup?anonymousId=query-params');
  for (const [path, parameter, says] of [
    [`/v1/profiles/${profile.id}/events?limit=abc`, 'limit', /whole number/],
    [`/v1/profiles/${profile.id}/events?from=yesterday`, 'from', /ISO 8601/],
    [`/v1/profiles/${profile.id}/events?type=purchase`, 'type', /one of/],
    [`/v1/profiles/${profile.id}/events?sort=asc`, 'sort', /unknown parameter/],
    ['/v1/profiles?where=computed.totalRevenue>abc', 'where', /not a number/],
    ['/v1/profiles?where=traits.plan==pro', 'where', /unknown operator/],
    ['/v1/profiles?limit=abc', 'limit', /whole number/],
  ]) {
    const { status, body } = await admin(worker.url, path);
    assert.equal(status, 400, path);
    assert.equal(body.error.parameter, parameter, path);
    assert.match(body.error.message, says, path);
  }
  const { status, body } = await admin(worker.url, `/v1/profiles/${profile.id}/events?limit=1&type=page`);
  assert.equal(status, 200);
  assert.equal(body.events.length, 1);
});

test('an import in a type the collector does not read is told which types it takes', async () => {
  const res = await fetch(`${worker.url}/v1/import`, { method: 'POST',
    headers: { 'Content-Type': 'application/xml', Authorization: `Basic ${btoa(`${WRITE_KEY}:`)}` }, body: '<rows/>' });
  assert.equal(res.status, 415);
  const body = await res.json();
  assert.equal(body.error.reason, 'unsupported_content_type');
  assert.match(body.error.message, /text\/csv.*application\/x-ndjson.*application\/json/);
});

test('the single-call paths and a JSON /v1/import land through the Worker', async () => {
  const one = (path, body) => fetch(`${worker.url}/v1/${path}`, { method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Basic ${btoa(`${WRITE_KEY}:`)}` }, body: JSON.stringify(body) });
  const calls = [
    ['identify', { userId: 'single-u', anonymousId: 'single-a', messageId: 'sc-i', traits: { plan: 'gold' } }],
    ['page', { anonymousId: 'single-a', messageId: 'sc-p', name: 'Pricing' }],
    ['screen', { anonymousId: 'single-a', messageId: 'sc-s', name: 'Cart' }],
    ['group', { anonymousId: 'single-a', messageId: 'sc-g', groupId: 'acme', traits: { seats: 5 } }],
    ['alias', { userId: 'single-u', previousId: 'single-a', messageId: 'sc-al' }],
    ['track', { anonymousId: 'single-a', messageId: 'sc-t', event: 'Signed Up' }],
  ];
  for (const [path, body] of calls) {
    const res = await one(path, body);
    assert.equal(res.status, 200, `${path}: ${await res.text()}`);
  }
  const imported = await one('import', { batch: [{ type: 'track', event: 'Imported', anonymousId: 'single-a', messageId: 'sc-imp' }] });
  assert.equal(imported.status, 200);
  const profile = await eventually(async () => {
    const r = await admin(worker.url, '/v1/profiles/lookup?userId=single-u');
    return r.status === 200 && r.body.eventCount >= 7 ? r.body : null;
  });
  assert.deepEqual(profile?.events.map((e) => `${e.type}:${e.messageId}`).sort(),
    ['alias:sc-al', 'group:sc-g', 'identify:sc-i', 'page:sc-p', 'screen:sc-s', 'track:sc-imp', 'track:sc-t']);
  assert.equal(profile.traits.plan, 'gold');
  assert.equal(profile.events.find((e) => e.type === 'group').groupId, 'acme');
});

test('an invalid IDENTITY_RULES makes every call answer 500 naming what is wrong', async () => {
  const bad = await startWorker({ misconfigured: true, vars: { IDENTITY_RULES: '{"limits": {"userId": "one"}}' } });
  try {
    const res = await fetch(`${bad.url}/v1/batch`, { method: 'POST', body: '{"batch":[]}' });
    assert.equal(res.status, 500);
    const { error } = await res.json();
    assert.equal(error.reason, 'misconfigured');
    assert.match(error.message, /limits/);
  } finally {
    await bad.stop();
  }
});
