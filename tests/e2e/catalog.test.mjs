// Catalog data in, against the Worker under `wrangler dev`: a CSV of products uploaded with a
// field mapping (bad rows reported by line), an event that only names a product stored with
// the product's fields, top categories and an audience from catalog data, `replace=true`,
// an upload large enough to travel through the queue in chunks, feeds pulled from a local
// server on the Cron Trigger and by hand (logged), and users that become identify calls
// stored once however often their feed is pulled.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { ADMIN_TOKEN, admin, eventually, profileEvents, sendBatch, settled, startWorker } from './harness.mjs';

let worker;
let server;
/** What the local feed server answers, by path: { type, body } or a status. */
const files = new Map();

before(async () => {
  server = createServer((req, res) => {
    const file = files.get(req.url);
    if (!file || typeof file === 'number') return res.writeHead(file ?? 404).end();
    res.writeHead(200, { 'Content-Type': file.type }).end(file.body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  worker = await startWorker();
  // Declared before any event is sent: a running consumer reads the kinds' settings again
  // within a minute of a change (README, Catalog).
  const recipes = await call('PUT', '/v1/catalog/kinds/recipes', { itemFields: ['recipe_id'] });
  assert.equal(recipes.status, 200, JSON.stringify(recipes.body));
  const products = await call('PUT', '/v1/catalog/kinds/products', { mapping: {
    id: 'sku', name: 'title', brand: 'brand', price: { from: 'price_eur', type: 'number' },
    category: { from: 'path', split: '›' } } });
  assert.equal(products.status, 200, JSON.stringify(products.body));
});
after(async () => {
  await worker?.stop();
  server?.close();
});

async function call(method, path, body, type = 'application/json') {
  const res = await fetch(`${worker.url}${path}`, { method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': type },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}
const upload = (kind, text, query = '', type = 'text/csv') => call('PUT', `/v1/catalog/${kind}${query}`, text, type);
const served = (path) => `http://127.0.0.1:${server.address().port}${path}`;
const done = (job) => eventually(async () => {
  const { body } = await admin(worker.url, `/v1/catalog/uploads/${job}`);
  return body.state === 'done' ? body : null;
}, { timeout: 30_000, interval: 200 });

const CSV = [
  'sku,title,brand,price_eur,path,secret',
  'stove,Titanium stove,Acme,59,Camping › Cooking,x',
  'pan,Frying pan,Acme,cheap,Camping › Cooking,x',
  'lantern,Lantern,Lumo,24.5,Camping › Light,x',
  ',No sku,Acme,3,Camping,x',
  'mug,Mug,Acme,9,Camping › Cooking,x',
].join('\n');

let sent = 0;
const event = (anonymousId, name, properties) => ({ type: 'track', event: name, anonymousId,
  messageId: `cat-${++sent}`, timestamp: new Date().toISOString(), properties });

test('a CSV of products is stored by the mapping, its bad rows reported by line', async () => {
  const { status, body } = await upload('products', CSV);
  assert.equal(status, 207, JSON.stringify(body));
  assert.equal(body.imported, 3);
  assert.deepEqual(body.rowErrors, [
    { line: 3, reason: 'price (from price_eur): "cheap" is not a number' },
    { line: 5, reason: 'id: the row has no "sku"' },
  ]);
  assert.equal(body.state, 'done', 'one chunk is stored as the request runs');
  const stove = await admin(worker.url, '/v1/catalog/products/stove');
  assert.equal(stove.status, 200);
  assert.deepEqual(stove.body.item, { name: 'Titanium stove', brand: 'Acme', price: 59, category: ['Camping', 'Cooking'] },
    'renamed, typed and split; the unmapped column dropped');
  const missing = await admin(worker.url, '/v1/catalog/products/pan');
  assert.equal(missing.status, 404, 'a refused row stores nothing');
  assert.match(missing.body.error.message, /no item "pan"/);
  // Paged in id order.
  const first = await admin(worker.url, '/v1/catalog/products?limit=2');
  assert.deepEqual(first.body.items.map((i) => i.id), ['lantern', 'mug']);
  const rest = await admin(worker.url, first.body.nextPage);
  assert.deepEqual(rest.body.items.map((i) => i.id), ['stove']);
  assert.equal(rest.body.next, null);
});

test('bad uploads get clear errors and cost nothing', async () => {
  const wrongType = await upload('products', CSV, '', 'application/json');
  assert.equal(wrongType.status, 415);
  assert.match(wrongType.body.error.message, /text\/csv/);
  const unknown = await upload('gadgets', CSV);
  assert.equal(unknown.status, 404);
  assert.match(unknown.body.error.message, /PUT \/v1\/catalog\/kinds\/gadgets/);
  const empty = await upload('products', 'sku,title\n,nothing\n', '?replace=true');
  assert.equal(empty.status, 400);
  assert.match(empty.body.error.message, /nothing was stored or removed/);
  const badKind = await call('PUT', '/v1/catalog/kinds/products', { itemFields: ['a.b'] });
  assert.equal(badKind.status, 400);
  assert.match(badKind.body.error.message, /an item field is a property name/);
  const noToken = await fetch(`${worker.url}/v1/catalog/products`, { method: 'PUT', body: CSV });
  assert.equal(noToken.status, 401);
  assert.equal((await admin(worker.url, '/v1/catalog/products/stove')).status, 200, 'the catalog is as it was');
});

test('an event naming only a product is stored with its fields; what the client sent wins', async () => {
  const { status } = await sendBatch(worker.url, [
    event('cat-visitor', 'Product Viewed', { product_id: 'stove' }),
    event('cat-visitor', 'Product Viewed', { product_id: 'lantern', price: 19 }),
    event('cat-visitor', 'Product Viewed', { product_id: 'mug' }),
    event('cat-visitor', 'Order Completed', { order_id: 'cat-o1', revenue: 68, products: [{ product_id: 'stove' }, { product_id: 'mug', quantity: 2 }] }),
    event('cat-visitor', 'Recipe Viewed', { recipe_id: 'chili' }),
  ]);
  assert.equal(status, 200);
  await settled(worker.url, 5);
  const events = await profileEvents(worker.url, 'cat-visitor');
  const viewed = (id) => events.find((e) => e.event === 'Product Viewed' && e.properties.product_id === id);
  assert.deepEqual(viewed('stove').properties, { product_id: 'stove', name: 'Titanium stove', brand: 'Acme', price: 59,
    category: ['Camping', 'Cooking'] });
  assert.deepEqual(viewed('stove').context.catalog.filled.sort(),
    ['properties.brand', 'properties.category', 'properties.name', 'properties.price']);
  assert.equal(viewed('lantern').properties.price, 19, "the client's price wins");
  assert.ok(!viewed('lantern').context.catalog.filled.includes('properties.price'));
  const order = events.find((e) => e.event === 'Order Completed');
  assert.equal(order.properties.products[1].name, 'Mug');
  assert.equal(order.properties.products[1].quantity, 2);
  assert.ok(order.context.catalog.filled.includes('properties.products[0].category'));
  // A kind the workspace declared, named by its own field; no item, nothing added.
  const recipe = events.find((e) => e.event === 'Recipe Viewed');
  assert.equal(recipe.context.catalog, undefined);
  const stats = (await admin(worker.url, '/v1/stats')).body;
  assert.equal(stats.catalog_enriched, 4);
});

test("catalog data feeds computed traits and audiences", async () => {
  const { body } = await admin(worker.url, '/v1/profiles/lookup?anonymousId=cat-visitor');
  assert.deepEqual(body.computedTraits.topCategories, ['Cooking', 'Light'], 'from the catalog, the most specific part of the path');
  const preview = await call('POST', '/v1/audiences/preview',
    { where: { did: { event: 'Product Viewed', where: ['properties.category=Cooking'] } } });
  assert.equal(preview.status, 200, JSON.stringify(preview.body));
  assert.equal(preview.body.size, 1);
  // The products report counts the categories the catalog gave.
  const products = await eventually(async () => {
    const { body: report } = await admin(worker.url, '/v1/reports/products?range=24h');
    return report.categories?.length ? report : null;
  });
  assert.deepEqual(products.categories.map((c) => [c.category, c.views]), [['Cooking', 2], ['Light', 1]]);
});

test('a kind declared by the workspace enriches events by its own item field', async () => {
  const { body } = await upload('recipes', '{"id": "soup", "title": "Soup", "minutes": 20}\n', '', 'application/x-ndjson');
  assert.equal(body.imported, 1);
  await sendBatch(worker.url, [event('cat-cook', 'Recipe Viewed', { recipe_id: 'soup' })]);
  await settled(worker.url, 6);
  const [viewed] = await profileEvents(worker.url, 'cat-cook');
  assert.deepEqual(viewed.properties, { recipe_id: 'soup', title: 'Soup', minutes: 20 });
  const kinds = (await admin(worker.url, '/v1/catalog/kinds')).body.kinds;
  assert.deepEqual(kinds.map((k) => [k.kind, k.items]), [['products', 3], ['content', 0], ['users', 0], ['recipes', 1]]);
  assert.deepEqual(kinds.find((k) => k.kind === 'recipes').itemFields, ['recipe_id']);
});

test('replace=true removes what the file does not have, unless the file has bad rows', async () => {
  const partial = ['sku,title,price_eur', 'stove,Titanium stove,59', 'mug,Mug,x', 'lantern,Lantern,25'].join('\n');
  const refused = await upload('products', partial, '?replace=true');
  assert.equal(refused.status, 207);
  assert.equal(refused.body.replace.applied, false);
  assert.match(refused.body.replace.why, /refused rows/);
  assert.equal((await admin(worker.url, '/v1/catalog/products/mug')).status, 200, 'nothing removed');
  const { status, body } = await upload('products', ['sku,title,price_eur', 'stove,Titanium stove,61'].join('\n'), '?replace=true');
  assert.equal(status, 200, JSON.stringify(body));
  assert.deepEqual(body.replace, { applied: true, removed: 2 });
  const left = (await admin(worker.url, '/v1/catalog/products')).body.items;
  assert.deepEqual(left.map((i) => [i.id, i.item.price]), [['stove', 61]]);
});

test('a large file travels through the queue in chunks, with progress', async () => {
  const rows = ['sku,title,price_eur,path'];
  for (let i = 0; i < 3000; i += 1) rows.push(`bulk-${String(i).padStart(4, '0')},Bulk item number ${i} with a long enough title,${i},Bulk › Items`);
  const { status, body } = await upload('products', rows.join('\n'));
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.imported, 3000);
  const progress = await done(body.job);
  assert.ok(progress, 'the upload finishes');
  assert.ok(progress.chunks > 1, `it went in chunks (${progress.chunks})`);
  assert.equal(progress.itemsDone, 3000);
  let count = 0;
  let page = '/v1/catalog/products?limit=500';
  while (page) {
    const { body: listed } = await admin(worker.url, page);
    count += listed.items.length;
    page = listed.nextPage;
  }
  assert.equal(count, 3001);
});

test('a feed is pulled on the schedule and by hand, and each run is logged', async () => {
  files.set('/content.ndjson', { type: 'application/x-ndjson',
    body: '{"slug": "guide", "headline": "Camping guide"}\n{"slug": "tips"}\n{"headline": "no slug"}\n' });
  const bad = await call('POST', '/v1/catalog/feeds', { key: 'content_feed', kind: 'content', url: 'ftp://x', format: 'ndjson' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.at, 'url');
  const created = await call('POST', '/v1/catalog/feeds', { key: 'content_feed', kind: 'content', url: served('/content.ndjson'),
    format: 'ndjson', schedule: '* * * * *', mapping: { id: 'slug', title: 'headline' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  // The Cron Trigger, twice in one minute: one pull.
  for (let i = 0; i < 2; i += 1) assert.equal((await fetch(`${worker.url}/__scheduled?cron=*+*+*+*+*`)).status, 200);
  const scheduled = await eventually(async () => {
    const { body } = await admin(worker.url, '/v1/catalog/feeds/content_feed/runs');
    return body.runs.length ? body.runs : null;
  });
  assert.equal(scheduled.length, 1);
  assert.equal(scheduled[0].trigger, 'schedule');
  assert.equal(scheduled[0].state, 'done');
  assert.equal(scheduled[0].items, 2);
  assert.deepEqual(scheduled[0].errors, [{ line: 3, reason: 'id: the row has no "slug"' }]);
  assert.equal(typeof scheduled[0].durationMs, 'number');
  assert.deepEqual((await admin(worker.url, '/v1/catalog/content/guide')).body.item, { title: 'Camping guide' });
  // By hand, after the file changed.
  files.set('/content.ndjson', { type: 'application/x-ndjson', body: '{"slug": "guide", "headline": "The camping guide"}\n' });
  const manual = await call('POST', '/v1/catalog/feeds/content_feed/run');
  assert.equal(manual.status, 200, JSON.stringify(manual.body));
  assert.deepEqual((await admin(worker.url, '/v1/catalog/content/guide')).body.item, { title: 'The camping guide' });
  // A file that cannot be fetched is a failed run, with why.
  files.set('/content.ndjson', 503);
  const failed = await call('POST', '/v1/catalog/feeds/content_feed/run');
  assert.equal(failed.status, 502);
  const runs = (await admin(worker.url, '/v1/catalog/feeds/content_feed/runs')).body.runs;
  assert.deepEqual(runs.map((r) => [r.trigger, r.state]), [['manual', 'failed'], ['manual', 'done'], ['schedule', 'done']]);
  assert.match(runs[0].error, /answered 503/);
  const listed = (await admin(worker.url, '/v1/catalog/feeds/content_feed')).body;
  assert.equal(listed.lastRun.state, 'failed');
  assert.deepEqual((await admin(worker.url, '/v1/catalog/content/guide')).body.item, { title: 'The camping guide' }, 'a failed pull keeps the items');
});

test('users from a feed become identify calls, stored once however often it is pulled', async () => {
  files.set('/users.csv', { type: 'text/csv', body: 'user_id,email,plan\nu-ann,ann@example.com,gold\nu-bob,bob@example.com,silver\n' });
  const created = await call('POST', '/v1/catalog/feeds', { key: 'crm_users', kind: 'users', url: served('/users.csv'),
    format: 'csv', mapping: { id: 'user_id', email: 'email', plan: 'plan' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const before = (await admin(worker.url, '/v1/stats')).body.accepted;
  for (let i = 0; i < 2; i += 1) assert.equal((await call('POST', '/v1/catalog/feeds/crm_users/run')).status, 200);
  const stats = await settled(worker.url, before + 4);
  assert.ok(stats.duplicates >= 2, 'the second pull is dropped as what was delivered before');
  const ann = await admin(worker.url, '/v1/profiles/lookup?userId=u-ann');
  assert.equal(ann.status, 200, JSON.stringify(ann.body));
  assert.equal(ann.body.traits.plan, 'gold');
  assert.ok(ann.body.identifiers.some((i) => i.type === 'email' && i.value === 'ann@example.com'), JSON.stringify(ann.body.identifiers));
  assert.equal(ann.body.events.filter((e) => e.type === 'identify').length, 1, 'stored once');
});

test('the consumer remembers the items it looked up for a minute: an item deleted meanwhile still enriches', async () => {
  const up = await upload('products', ['sku,title,brand,price_eur,path', 'kettle,Kettle,Acme,35,Camping › Cooking'].join('\n'));
  assert.equal(up.status, 200, JSON.stringify(up.body));
  const viewed = () => sendBatch(worker.url, [event('cat-kettle', 'Product Viewed', { product_id: 'kettle' })]);
  const stored = (n) => eventually(async () => {
    const events = await profileEvents(worker.url, 'cat-kettle');
    return events.length === n ? events : null;
  }, { timeout: 30_000 });
  assert.equal((await viewed()).status, 200);
  await stored(1);
  const deleted = await call('DELETE', '/v1/catalog/products/kettle');
  assert.ok(deleted.status < 300, JSON.stringify(deleted.body));
  assert.equal((await admin(worker.url, '/v1/catalog/products/kettle')).status, 404, 'gone from the store');
  assert.equal((await viewed()).status, 200);
  const events = await stored(2);
  // Asked of the store, the second would have no name: the item is gone there (README, Catalog).
  assert.deepEqual(events.map((e) => e.properties.name), ['Kettle', 'Kettle']);
});
