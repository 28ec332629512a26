// Activation against the Worker under `wrangler dev`: audience changes delivered to a local
// receiver that checks every signature with the published Standard Webhooks library
// (`standardwebhooks`, not our code), retries with nothing doubled, a 410 that turns a
// destination off, consent, erasure, and the Segment-compatible destination landing in a
// second source of this platform.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Webhook } from 'standardwebhooks';
import { ADMIN_TOKEN, SOURCES, admin, eventually, sendBatch, startWorker } from './harness.mjs';

const FORWARDED_KEY = 'forwarded-key';
let worker;
let receiver;
/** Every request the receiver got: { path, id, body, verified, status }. */
const received = [];
/** How the receiver answers, by path: a status (or `{ status, headers }`), or a function of
 * the attempt number giving one. */
const behaviour = new Map();
const secrets = new Map();

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const path = req.url;
      const attempts = received.filter((r) => r.path === path && r.id === req.headers['webhook-id']).length + 1;
      let verified = false;
      try {
        new Webhook(secrets.get(path)).verify(body, req.headers);
        verified = true;
      } catch { /* recorded as not verified */ }
      const answer = behaviour.get(path) ?? 204;
      const given = typeof answer === 'function' ? answer(attempts) : answer;
      const { status, headers = {} } = typeof given === 'object' ? given : { status: given };
      received.push({ path, id: req.headers['webhook-id'], body: JSON.parse(body), verified, status, at: Date.now() });
      res.writeHead(status, headers).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  worker = await startWorker({ vars: { SOURCES: JSON.stringify([...SOURCES, { writeKey: FORWARDED_KEY, name: 'Forwarded' }]) } });
  const created = await call('POST', '/v1/audiences', { key: 'in_cart', name: 'In cart', group: 'shop', where: { all: [
    { did: { event: 'Product Added', within: '1h' } }, { didNot: { event: 'Order Completed', within: '1h' } }] } });
  assert.equal(created.status, 201);
});
after(async () => {
  await worker?.stop();
  receiver?.close();
});

async function call(method, path, body) {
  const res = await fetch(`${worker.url}${path}`, { method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

const hook = (path) => `http://127.0.0.1:${receiver.address().port}${path}`;
/** A webhook destination to `path` of the receiver; keeps its generated secret for the receiver. */
async function webhook(key, path, extra = {}) {
  const { status, body } = await call('POST', '/v1/destinations', { key, type: 'webhook', audiences: ['in_cart'],
    fields: ['identifiers.email', 'traits.name'], retry: { first: '1s', max: '2s', for: '1h' }, settings: { url: hook(path) }, ...extra });
  assert.equal(status, 201, JSON.stringify(body));
  assert.match(body.settings.secret, /^whsec_/, 'the generated secret, shown once');
  secrets.set(path, body.settings.secret);
  return body;
}

let n = 0;
const event = (anonymousId, name, extra = {}) => ({ type: 'track', event: name, anonymousId, messageId: `act-${++n}`,
  timestamp: new Date().toISOString(), ...extra });
const of = (path, anonymousId) => received.filter((r) => r.path === path && r.body.profile?.identifiers?.email?.includes(`${anonymousId}@example.com`));
const log = async (key) => (await admin(worker.url, `/v1/destinations/${key}/deliveries`)).body.deliveries;

test('a bad destination is refused naming the place; the secret is shown once', async () => {
  const bad = await call('POST', '/v1/destinations', { key: 'bad', type: 'webhook', audiences: ['in_cart'], settings: { url: 'ftp://x' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.at, 'settings.url');
  assert.equal((await call('POST', '/v1/destinations', { key: 'bad', type: 'fax', audiences: ['in_cart'] })).body.error.at, 'type');
  await webhook('shown_once', '/shown');
  const later = await admin(worker.url, '/v1/destinations/shown_once');
  assert.match(later.body.settings.secret, /…$/, 'masked after');
  assert.equal((await call('DELETE', '/v1/destinations/shown_once')).status, 200);
});

test('entered and exited are delivered once each, in order, signed as Standard Webhooks says', async () => {
  await webhook('crm', '/crm');
  const person = 'act-shopper';
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: person, messageId: `act-${++n}`, traits: { email: `${person}@example.com`, name: 'Ada', plan: 'pro' } },
    event(person, 'Product Added')]);
  assert.ok(await eventually(() => of('/crm', person).length === 1, { timeout: 15_000 }), 'the entry arrives');
  await sendBatch(worker.url, [event(person, 'Order Completed', { properties: { total: 30 } })]);
  assert.ok(await eventually(() => of('/crm', person).length === 2, { timeout: 15_000 }), 'the exit arrives');
  // Both delivered, per the log: nothing else is on its way.
  await eventually(async () => (await log('crm')).filter((d) => d.outcome === 'delivered').length >= 2, { timeout: 10_000 });
  const [entered, exited] = of('/crm', person);
  assert.ok(entered.verified && exited.verified, 'the published library verifies both');
  assert.deepEqual([entered.body.type, exited.body.type], ['audience.entered', 'audience.exited']);
  assert.ok(exited.body.sequence > entered.body.sequence, 'the sequence only grows');
  assert.notEqual(entered.id, exited.id);
  assert.deepEqual(entered.body.audience, { key: 'in_cart', name: 'In cart', group: 'shop' });
  assert.deepEqual(entered.body.profile.identifiers, { email: [`${person}@example.com`] });
  assert.deepEqual(entered.body.profile.traits, { name: 'Ada' }, 'only the fields named leave');
  assert.equal(of('/crm', person).length, 2, 'once each');
});

test('a receiver that fails twice gets the same message a third time, and nothing is doubled', async () => {
  behaviour.set('/flaky', (attempt) => (attempt <= 2 ? 503 : 200));
  await webhook('flaky', '/flaky');
  const person = 'act-flaky';
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: person, messageId: `act-${++n}`, traits: { email: `${person}@example.com` } },
    event(person, 'Product Added')]);
  assert.ok(await eventually(() => of('/flaky', person).some((r) => r.status === 200), { timeout: 30_000 }), 'delivered after retries');
  const tries = of('/flaky', person);
  assert.deepEqual(tries.map((t) => t.status), [503, 503, 200]);
  assert.equal(new Set(tries.map((t) => t.id)).size, 1, 'one webhook-id across tries');
  assert.ok(tries.every((t) => t.verified));
  const entries = (await log('flaky')).filter((d) => d.profile && d.webhookId === tries[0].id).reverse();
  assert.deepEqual(entries.map((e) => e.outcome), ['will retry', 'will retry', 'delivered']);
  assert.ok(entries[0].nextAt, 'the log says when the next try is');
  const stats = (await admin(worker.url, '/v1/stats')).body;
  assert.ok(stats.deliveries_retried >= 2 && stats.deliveries_sent >= 1, JSON.stringify(stats));
});

test('an entry caused by a delivery that is retried after its profile stored it still leaves, once', async () => {
  await webhook('retried', '/retried');
  const person = 'act-retried';
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: person, messageId: `act-${++n}`, traits: { email: `${person}@example.com` } }]);
  const listed = () => admin(worker.url, `/v1/profiles?where=identifiers.anonymousId~${person}`);
  const entry = await eventually(async () => (await listed()).body.profiles?.[0], { timeout: 15_000 });
  assert.ok(entry, 'listed in the directory');
  // The next delivery reaches the profile, which stores the event and records the entry,
  // and then fails twice at the directory: the queue hands the message over again, and
  // the entry must come from the profile's timeline, since the event is a duplicate now.
  const fault = await fetch(`${worker.url}/v1/admin/faults?directoryProfile=${entry.id}&failures=2`,
    { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(fault.status, 200);
  await sendBatch(worker.url, [event(person, 'Product Added')]);
  assert.ok(await eventually(() => of('/retried', person).length === 1, { timeout: 30_000 }), 'the entry arrives');
  assert.equal(of('/retried', person)[0].body.type, 'audience.entered');
  const stats = (await admin(worker.url, '/v1/stats')).body;
  assert.ok(stats.queue_retries >= 1, `the delivery was retried: ${JSON.stringify(stats)}`);
  await new Promise((r) => setTimeout(r, 2_000));
  assert.equal(of('/retried', person).length, 1, 'once');
});

test('a 429 is tried again after its Retry-After, not the backoff; another 4xx is not retried', async () => {
  // The backoff says an hour; Retry-After says a second.
  behaviour.set('/busy', (attempt) => (attempt === 1 ? { status: 429, headers: { 'Retry-After': '1' } } : 200));
  await webhook('busy', '/busy', { retry: { first: '1h', max: '10h', for: '1d' } });
  behaviour.set('/refuses', 400);
  await webhook('refuses', '/refuses');
  const person = 'act-busy';
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: person, messageId: `act-${++n}`, traits: { email: `${person}@example.com` } },
    event(person, 'Product Added')]);
  assert.ok(await eventually(() => of('/busy', person).some((r) => r.status === 200), { timeout: 20_000 }), 'tried again within seconds');
  const [first, second] = of('/busy', person);
  assert.ok(second.at - first.at < 10_000, `after Retry-After (${second.at - first.at} ms), not an hour`);
  const refused = await eventually(async () => (await log('refuses')).find((d) => d.profile && d.outcome === 'dropped'), { timeout: 10_000 });
  assert.match(refused.error, /400; not retried/);
  assert.equal(of('/refuses', person).length, 1, 'one try only');
});

test('a receiver that answers 410 is not retried, and its destination is turned off, saying why', async () => {
  behaviour.set('/gone', 410);
  await webhook('gone', '/gone');
  const person = 'act-gone';
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: person, messageId: `act-${++n}`, traits: { email: `${person}@example.com` } },
    event(person, 'Product Added')]);
  const off = await eventually(async () => {
    const { body } = await admin(worker.url, '/v1/destinations/gone');
    return body.state === 'disabled' ? body : null;
  }, { timeout: 15_000 });
  assert.ok(off, 'disabled');
  assert.match(off.disabledReason, /410/);
  assert.equal(of('/gone', person).length, 1, 'one try only');
  assert.equal((await log('gone'))[0].outcome, 'destination disabled');
});

test('without the consent a destination asks for, nothing about the person leaves', async () => {
  await webhook('marketing', '/marketing', { consent: 'marketing' });
  const refused = 'act-no-consent';
  const granted = 'act-consent';
  const consent = (marketing) => ({ consent: { categoryPreferences: { marketing } } });
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: refused, messageId: `act-${++n}`, traits: { email: `${refused}@example.com` }, context: consent(false) },
    event(refused, 'Product Added', { context: consent(false) }),
    { type: 'identify', anonymousId: granted, messageId: `act-${++n}`, traits: { email: `${granted}@example.com` }, context: consent(true) },
    event(granted, 'Product Added', { context: consent(true) }),
  ]);
  assert.ok(await eventually(() => of('/marketing', granted).length === 1, { timeout: 15_000 }), 'the consenting one is sent');
  const dropped = await eventually(async () => (await log('marketing')).find((d) => d.outcome === 'dropped'), { timeout: 10_000 });
  assert.match(dropped.error, /no marketing consent/);
  assert.equal(of('/marketing', refused).length, 0, 'the other never');
});

test('an erased person\'s pending deliveries are dropped and nothing about them is sent later', async () => {
  let open = false;
  behaviour.set('/later', () => (open ? 200 : 500));
  await webhook('later', '/later');
  const person = 'act-erased';
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: person, messageId: `act-${++n}`, traits: { email: `${person}@example.com` } },
    event(person, 'Product Added')]);
  assert.ok(await eventually(() => of('/later', person).length >= 1, { timeout: 15_000 }), 'a first try failed');
  const profile = (await admin(worker.url, `/v1/profiles/lookup?anonymousId=${person}`)).body;
  assert.equal((await call('DELETE', `/v1/profiles/${profile.id}`)).status, 200);
  open = true;
  const dropped = await eventually(async () => (await log('later')).find((d) => d.outcome === 'dropped' && /gone/.test(d.error)), { timeout: 15_000 });
  assert.ok(dropped, 'the retry found the person gone');
  assert.ok(of('/later', person).every((r) => r.status === 500), 'never delivered');
});

test('a delivery whose time runs out goes to the dead-letter store, and a replay sends it', async () => {
  let mended = false;
  behaviour.set('/down', () => (mended ? 200 : 503));
  await webhook('down', '/down', { retry: { first: '1s', max: '1s', for: '3s' } });
  const person = 'act-dead';
  await sendBatch(worker.url, [{ type: 'identify', anonymousId: person, messageId: `act-${++n}`, traits: { email: `${person}@example.com` } },
    event(person, 'Product Added')]);
  const given = await eventually(async () => (await log('down')).find((d) => /dead-letter/.test(d.outcome)), { timeout: 30_000, interval: 250 });
  assert.ok(given, 'given up after its time');
  const failures = of('/down', person).length;
  assert.ok(failures >= 2 && of('/down', person).every((r) => r.status === 503));
  mended = true;
  const replay = await call('POST', '/v1/destinations/down/replay');
  assert.deepEqual(replay.body, { replayed: 1 });
  assert.ok(await eventually(() => of('/down', person).some((r) => r.status === 200 && r.verified), { timeout: 15_000 }), 'delivered by the replay');
  assert.equal(new Set(of('/down', person).map((r) => r.id)).size, 1, 'the same webhook-id throughout');
  assert.deepEqual((await call('POST', '/v1/destinations/down/replay')).body, { replayed: 0 }, 'the store is empty');
});

test('the Segment-compatible destination lands in a second source of this platform', async () => {
  const { status } = await call('POST', '/v1/destinations', { key: 'segment_twin', type: 'segment', audiences: ['in_cart'],
    settings: { endpoint: worker.url, writeKey: FORWARDED_KEY } });
  assert.equal(status, 201);
  const person = 'act-forwarded';
  await sendBatch(worker.url, [event(person, 'Product Added')]);
  const forwarded = await eventually(async () => {
    const { status: found, body } = await admin(worker.url, `/v1/profiles/lookup?anonymousId=${person}`);
    return found === 200 && body.traits.in_cart === true ? body : null;
  }, { timeout: 20_000 });
  assert.ok(forwarded, 'the identify set the trait in_cart: true');
  assert.equal(forwarded.traitSources.in_cart.source, 'Forwarded');
  const track = forwarded.events.find((e) => e.event === 'Audience Entered' && e.messageId?.endsWith('_track'));
  assert.equal(track.properties.audience_key, 'in_cart');
  const test = await call('POST', '/v1/destinations/segment_twin/test');
  assert.equal(test.body.status, 200);
});

/** Waits for the newest run of `key` to be done; its manifest. */
const finished = (key) => eventually(async () => {
  const { body } = await admin(worker.url, `/v1/exports/${key}/runs`);
  return body.runs?.[0]?.state === 'done' ? body.runs[0] : null;
}, { timeout: 30_000, interval: 250 });
const download = async (key, run) => {
  const res = await fetch(`${worker.url}/v1/exports/${key}/runs/${run}/file`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  return { status: res.status, text: res.status === 200 ? gunzipSync(Buffer.from(await res.arrayBuffer())).toString('utf8') : null };
};

test('an export run writes the audience\'s members, row by row, and an erased person leaves its files', async () => {
  const bad = await call('POST', '/v1/exports', { key: 'bad', audience: 'in_cart', fields: ['identifiers.email'], schedule: 'every monday' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.at, 'schedule');
  const people = ['exp-1', 'exp-2', 'exp-3'];
  await sendBatch(worker.url, people.flatMap((p, i) => [
    { type: 'identify', anonymousId: p, messageId: `act-${++n}`, traits: { email: `${p}@example.com`, name: `Name, "${i}"` } },
    event(p, 'Product Added')]));
  const inCart = async () => (await admin(worker.url, '/v1/audiences/in_cart/members?limit=200')).body.profiles;
  await eventually(async () => (await inCart()).filter((m) => m.identifiers?.email?.[0]?.startsWith('exp-')).length === 3, { timeout: 15_000 });
  const created = await call('POST', '/v1/exports', { key: 'cart_csv', audience: 'in_cart', format: 'csv',
    fields: ['identifiers.email', 'traits.name'], schedule: '0 6 * * 1' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const listed = await admin(worker.url, '/v1/exports/cart_csv');
  assert.match(listed.body.nextRunAt, /T06:00:00/, 'the next Monday at 06:00 UTC');
  const started = await call('POST', '/v1/exports/cart_csv/run');
  assert.equal(started.status, 201);
  const run = await finished('cart_csv');
  const members = await inCart();
  assert.equal(run.rows, members.length, 'one row per member');
  const { status, text } = await download('cart_csv', run.run);
  assert.equal(status, 200);
  const lines = text.trimEnd().split('\n');
  assert.equal(lines[0], 'profileId,identifiers.email,traits.name');
  assert.equal(lines.length - 1, members.length);
  for (const m of members) {
    const email = (m.identifiers.email ?? []).join(';');
    const name = m.traits?.name;
    const quoted = name === undefined ? '' : /[",]/.test(name) ? `"${name.replaceAll('"', '""')}"` : name;
    assert.ok(lines.includes(`${m.id},${email},${quoted}`), `a row for ${m.id}: ${m.id},${email},${quoted}`);
  }

  // Erasing exp-1 deletes the file that holds them, lists it in the audit, and later runs leave them out.
  const profile = (await admin(worker.url, '/v1/profiles/lookup?anonymousId=exp-1')).body;
  const erased = await call('DELETE', `/v1/profiles/${profile.id}`);
  assert.deepEqual(erased.body.detail.exportFiles.map((f) => f.run), [run.run]);
  assert.equal((await download('cart_csv', run.run)).status, 409, 'the file is gone');
  await eventually(async () => !(await inCart()).some((m) => m.id === profile.id), { timeout: 10_000 });
  assert.equal((await call('POST', '/v1/exports/cart_csv/run')).status, 201);
  const later = await eventually(async () => {
    const r = await finished('cart_csv');
    return r && r.run !== run.run ? r : null;
  }, { timeout: 30_000 });
  const again = await download('cart_csv', later.run);
  assert.ok(!again.text.includes('exp-1@example.com'), 'never in a later file');
  assert.ok(again.text.includes('exp-2@example.com'));
});

test('an NDJSON export of a segment group keeps only people with the consent it asks for', async () => {
  const created = await call('POST', '/v1/exports', { key: 'shop_ndjson', group: 'shop', format: 'ndjson',
    fields: ['identifiers.email'], consent: 'marketing', schedule: '*/30 * * * *' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal((await call('POST', '/v1/exports/shop_ndjson/run')).status, 201);
  const run = await finished('shop_ndjson');
  const rows = (await download('shop_ndjson', run.run)).text.trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.ok(rows.some((r) => r['identifiers.email'] === 'act-consent@example.com'), 'the consenting shopper');
  assert.ok(!rows.some((r) => r['identifiers.email'] === 'act-no-consent@example.com'), 'not the one who refused');
  assert.equal(rows.length, run.rows);
});

test('the Cron Trigger starts an export that is due, once per minute however often it fires', async () => {
  const created = await call('POST', '/v1/exports', { key: 'every_minute', audience: 'in_cart', format: 'ndjson',
    fields: ['identifiers.email'], schedule: '* * * * *' });
  assert.equal(created.status, 201);
  // Twice within a minute (wrangler dev runs the scheduled handler on GET /__scheduled).
  const minute = Math.floor(Date.now() / 60_000);
  for (let i = 0; i < 2; i += 1) assert.equal((await fetch(`${worker.url}/__scheduled?cron=*+*+*+*+*`)).status, 200);
  const run = await finished('every_minute');
  assert.equal(run.trigger, 'schedule');
  const { body } = await admin(worker.url, '/v1/exports/every_minute/runs');
  if (Math.floor(Date.now() / 60_000) === minute) assert.equal(body.runs.length, 1, 'claimed once in its minute');
});
