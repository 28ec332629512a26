// What a new site meets first, in Chromium against the Worker under `wrangler dev`: the
// script tag loaded by a page on another origin, a refusal the page can read, and the real
// analytics.js (`@segment/analytics-next`) pointed at the collector.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { build } from 'esbuild';
import { ROOT, WRITE_KEY, admin, eventually, launchBrowser, profileEvents, startWorker } from './harness.mjs';

let worker;
let browser;
let site; // a second local origin: the customer's own site

before(async () => {
  worker = await startWorker();
  browser = await launchBrowser();
  site = await serveSite();
});

after(async () => {
  await browser?.close();
  await site?.close();
  await worker?.stop();
});

/** A site on its own origin (another port): `/tag.html?key=…` embeds the collector's tag. */
function serveSite() {
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname !== '/tag.html') { res.writeHead(404).end(); return; }
    const key = url.searchParams.get('key') ?? WRITE_KEY;
    res.writeHead(200, { 'Content-Type': 'text/html' }).end(`<!doctype html><title>Another site</title>
      <script src="${worker.url}/cdp.js" data-write-key="${key}" async></script>`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => server.close(r)),
  })));
}

async function withPage(fn) {
  const context = await browser.newContext();
  try { return await fn(await context.newPage(), context); } finally { await context.close(); }
}

test('the script tag served by the collector works on a page of another origin', () => withPage(async (page) => {
  const failed = [];
  page.on('requestfailed', (r) => failed.push(r.url()));
  page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  await page.goto(`${site.url}/tag.html`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded, null, { timeout: 10_000 });
  const anonymousId = await page.evaluate(() => window.cdp.anonymousId());
  await page.evaluate(() => { window.cdp.track('Cross Origin'); return window.cdp.flush(); });
  const events = await eventually(async () => { const e = await profileEvents(worker.url, anonymousId); return e.length >= 2 ? e : null; });
  assert.deepEqual((events ?? []).map((e) => e.event ?? e.type), ['page', 'Cross Origin']);
  assert.equal(events[0].context.page.url, `${site.url}/tag.html`);
  assert.deepEqual(failed, [], 'every file and batch loaded');
}));

test('a batch refused for its origin is settled by the tracker, not retried', () => withPage(async (page) => {
  const batches = [];
  page.on('response', async (r) => {
    if (r.url().endsWith('/v1/batch')) batches.push({ status: r.status(), events: JSON.parse(r.request().postData()).batch });
  });
  // strict-key allows only https://shop.example
  await page.goto(`${site.url}/tag.html?key=strict-key`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded, null, { timeout: 10_000 });
  await eventually(() => batches.length >= 1);
  assert.equal(batches[0].status, 403);
  const queued = () => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:')).length);
  assert.equal(await eventually(async () => (await queued()) === 0), true, 'the refused page view left the queue');
  // A later batch carries only what came later: the refused one was never sent again.
  await page.evaluate(() => { window.cdp.track('Later'); return window.cdp.flush(); });
  await eventually(() => batches.length >= 2);
  assert.deepEqual(batches.map((b) => b.events.map((e) => e.event ?? e.type)), [['page'], ['Later']]);
}));

/** analytics-next bundled by esbuild for the page, as a site's own build would. */
async function analyticsBundle() {
  const result = await build({
    stdin: { contents: "import { AnalyticsBrowser } from '@segment/analytics-next'; window.AnalyticsBrowser = AnalyticsBrowser;", resolveDir: ROOT },
    bundle: true, format: 'iife', write: false, logLevel: 'silent', target: 'es2020',
  });
  return result.outputFiles[0].text;
}

async function runAnalyticsJs(page, load) {
  const bundle = await analyticsBundle();
  const answers = [];
  page.on('response', (r) => { if (r.url().startsWith(worker.url)) answers.push(`${r.status()} ${new URL(r.url()).pathname}`); });
  await page.route(`${worker.url}/ajs/**`, (route) => route.request().url().endsWith('.js')
    ? route.fulfill({ contentType: 'text/javascript', body: bundle })
    : route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>analytics.js</title><script src="/ajs/ajs.js"></script>' }));
  // The calls a shop makes: a page, a product view, a login, an order.
  await page.addInitScript(() => {
    window.shopCalls = async (analytics, userId) => {
      await analytics.page('Home');
      await analytics.track('Product Viewed', { product_id: 'stove', price: 59 });
      await analytics.identify(userId, { email: `${userId}@example.com` });
      await analytics.track('Order Completed', { order_id: `${userId}-1`, revenue: 59, currency: 'EUR' });
    };
  });
  await page.goto(`${worker.url}/ajs/index.html`);
  const userId = await page.evaluate(load, { writeKey: WRITE_KEY, host: new URL(worker.url).host, origin: worker.url });
  const events = await eventually(async () => {
    const { status, body } = await admin(worker.url, `/v1/profiles/lookup?userId=${userId}`);
    return status === 200 && body.eventCount >= 4 ? body.events.slice().reverse() : null;
  }, { timeout: 20_000 });
  return { events: events ?? [], answers, userId };
}

function checkShop(events, userId) {
  assert.deepEqual(events.map((e) => e.event ?? e.type), ['page', 'Product Viewed', 'identify', 'Order Completed']);
  assert.equal(events[3].properties.revenue, 59);
  assert.equal(events[3].userId, userId);
  assert.equal(events[0].context.library.name, 'analytics.js');
  assert.ok(events.every((e) => e.anonymousId === events[0].anonymousId), 'one visitor');
}

test('analytics.js with its settings read from the collector lands every call (one request each)', () => withPage(async (page) => {
  const { events, answers, userId } = await runAnalyticsJs(page, async ({ writeKey, origin }) => {
    // cdnURL: the settings come from /v1/projects/{writeKey}/settings, which point back here.
    const [analytics] = await window.AnalyticsBrowser.load({ writeKey, cdnURL: origin });
    const id = `ajs-${Date.now()}`;
    await window.shopCalls(analytics, id);
    return id;
  });
  checkShop(events, userId);
  for (const path of ['/v1/p', '/v1/t', '/v1/i']) assert.ok(answers.includes(`200 ${path}`), `${path} in ${answers}`);
  assert.ok(answers.includes(`200 /v1/projects/${WRITE_KEY}/settings`));
  assert.deepEqual(answers.filter((a) => !a.startsWith('200')), [], 'nothing refused');
}));

test('analytics.js batching to /v1/b lands every call', () => withPage(async (page) => {
  const { events, answers, userId } = await runAnalyticsJs(page, async ({ writeKey, host }) => {
    const [analytics] = await window.AnalyticsBrowser.load(
      { writeKey, cdnSettings: { integrations: { 'Segment.io': { apiKey: writeKey } } } },
      { integrations: { 'Segment.io': { apiHost: `${host}/v1`, protocol: 'http',
        deliveryStrategy: { strategy: 'batching', config: { size: 4, timeout: 500 } } } } },
    );
    const id = `ajs-batch-${Date.now()}`;
    await window.shopCalls(analytics, id);
    return id;
  });
  checkShop(events, userId);
  assert.ok(answers.includes('200 /v1/b'), String(answers));
  assert.deepEqual(answers.filter((a) => !a.startsWith('200')), [], 'nothing refused');
}));

