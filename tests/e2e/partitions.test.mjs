// Partitioned consumers (README, Scale): with the events queue declared as four queues, a
// device's messages go to the partition of its anonymousId's hash, and the four consumers
// run at once (this file's Worker declares them; wrangler.toml ships one). What two partitions share (one person on two devices) is serialised by the
// identity index's compare-and-set and by a merge that copies a profile again when it
// changed while being copied. Each race is forced with local development's injected
// pause, holding one consumer at the point where the other can overtake it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_TOKEN, ROOT, admin, eventually, sendBatch, settled, startWorker } from './harness.mjs';

/** wrangler.toml (without its build step) with three more event queue partitions, each
 * with its consumer, as README, Scale says to add them. */
function partitioned() {
  const path = join(ROOT, '.wrangler-partitions.toml');
  const base = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').replace(/^\[build\]\n(?:(?!\[).*\n)*/m, '');
  const more = [1, 2, 3].map((p) => `
[[queues.producers]]
queue = "cdp-events-${p}"
binding = "EVENTS_${p}"

[[queues.consumers]]
queue = "cdp-events-${p}"
max_batch_size = 100
max_batch_timeout = 1
max_retries = 5
retry_delay = 1
dead_letter_queue = "cdp-events-dlq"
max_concurrency = 1
`).join('');
  writeFileSync(path, base + more);
  return path;
}

let worker;

before(async () => { worker = await startWorker({ config: partitioned() }); });
after(async () => { await worker?.stop(); });

/** The partition of `anonymousId` among 4, as `cdp_protocol::routing::partition` says:
 * FNV-1a (64 bits) of its UTF-8 bytes. */
const partition = (anonymousId) => {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(anonymousId)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return Number(h % 4n);
};
/** A device id named `stem-…` whose partition differs from every one of `others`. */
const deviceApart = (stem, ...others) => {
  for (let i = 0; ; i += 1) {
    const id = `${stem}-${i}`;
    if (others.every((o) => partition(o) !== partition(id))) return id;
  }
};
const post = (path) => fetch(`${worker.url}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
const lookup = async (query) => {
  const r = await admin(worker.url, `/v1/profiles/lookup?${query}`);
  return r.status === 200 ? r.body : null;
};
const found = (query, test = () => true) => eventually(async () => {
  const p = await lookup(query);
  return p && test(p) ? p : null;
}, { timeout: 30_000, interval: 200 });
const idsOf = (profile) => profile.events.map((e) => e.messageId).sort();

test('one person on two devices identified at once in two partitions ends in one profile', async () => {
  const a = deviceApart('cas-a');
  const b = deviceApart('cas-b', a);
  const before = await settled(worker.url);
  // Device a's delivery reads the index (the user is unknown), then waits 6 s before
  // writing it; device b's, in another partition, links the same user meanwhile.
  assert.equal((await post(`/v1/admin/faults?anonymousId=${a}&pauseMs=6000&pauseAt=assign`)).status, 200);
  assert.equal((await sendBatch(worker.url, [{ type: 'identify', anonymousId: a, userId: 'u-two-devices', messageId: 'cas-1' }])).status, 200);
  await new Promise((r) => setTimeout(r, 1_500));
  assert.equal((await sendBatch(worker.url, [{ type: 'identify', anonymousId: b, userId: 'u-two-devices', messageId: 'cas-2' }])).status, 200);
  const early = await found(`anonymousId=${b}`);
  assert.ok(early, 'the other partition delivered while the first was held: they run at once');
  assert.equal(await lookup(`anonymousId=${a}`), null, 'the held delivery had stored nothing yet');

  await settled(worker.url, (before.accepted ?? 0) + 2);
  const byA = await found(`anonymousId=${a}`, (p) => p.events.length === 2);
  assert.ok(byA, 'the held delivery, resolved again, joined the profile the other made');
  const byB = await lookup(`anonymousId=${b}`);
  const byUser = await lookup('userId=u-two-devices');
  assert.equal(byB.id, byA.id, 'both devices in one profile');
  assert.equal(byUser.id, byA.id, 'and the user with them');
  assert.deepEqual(idsOf(byA), ['cas-1', 'cas-2'], 'each event once');
});

test('a profile that changes while another partition merges it is copied again, and keeps what it gained', async () => {
  const a1 = deviceApart('fwd-a1');
  const a2 = deviceApart('fwd-a2');
  // Two people so far: one known by an email, one by a user id.
  assert.equal((await sendBatch(worker.url, [
    { type: 'identify', anonymousId: a1, messageId: 'fwd-1', traits: { email: 'fwd@example.com' } },
  ])).status, 200);
  assert.equal((await sendBatch(worker.url, [{ type: 'identify', anonymousId: a2, userId: 'u-fwd', messageId: 'fwd-2' }])).status, 200);
  const first = await found(`anonymousId=${a1}`);
  const second = await found(`anonymousId=${a2}`);
  assert.notEqual(first.id, second.id);
  const before = await settled(worker.url, 2);

  // Device a1 turns out to be that user's: the merge copies one profile into the other,
  // then waits 6 s before leaving the forward that empties it.
  assert.equal((await post(`/v1/admin/faults?anonymousId=${a1}&pauseMs=6000&pauseAt=forward`)).status, 200);
  assert.equal((await sendBatch(worker.url, [{ type: 'identify', anonymousId: a1, userId: 'u-fwd', messageId: 'fwd-3' }])).status, 200);
  await new Promise((r) => setTimeout(r, 2_000));
  // Meanwhile, from a partition of their own, each profile gains an event and a device.
  const c1 = deviceApart('fwd-c1', a1);
  const c2 = deviceApart('fwd-c2', a1);
  assert.equal((await sendBatch(worker.url, [
    { type: 'identify', anonymousId: c1, messageId: 'fwd-4', traits: { email: 'fwd@example.com' } },
    { type: 'identify', anonymousId: c2, userId: 'u-fwd', messageId: 'fwd-5' },
  ])).status, 200);

  await settled(worker.url, (before.accepted ?? 0) + 3);
  const survivor = await found('userId=u-fwd', (p) => p.events.length >= 5);
  assert.ok(survivor, 'every event in the one profile left');
  assert.deepEqual(idsOf(survivor), ['fwd-1', 'fwd-2', 'fwd-3', 'fwd-4', 'fwd-5']);
  for (const device of [a1, a2, c1, c2]) {
    assert.equal((await lookup(`anonymousId=${device}`))?.id, survivor.id, `${device} leads to it`);
  }
  const devices = survivor.identifiers.filter((i) => i.type === 'anonymousId').map((i) => i.value).sort();
  assert.deepEqual(devices, [a1, a2, c1, c2].sort(), 'the devices linked meanwhile are held');
});
