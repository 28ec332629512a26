// The tracker in Chromium against the Worker under `wrangler dev`: delivery through
// failures, page closes and offline periods; single-page-app routes; the call queue;
// consent; several tabs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { admin, eventually, launchBrowser, profileEvents, startWorker, trackerIdle, watchBatches } from './harness.mjs';

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

async function openShop(context, path = '/') {
  const page = await context.newPage();
  await page.goto(`${worker.url}${path}`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  const anonymousId = await page.evaluate(() => window.cdp.anonymousId());
  return { page, anonymousId };
}

// The loader snippet of the README: defines the call queue before anything loads.
const SNIPPET = readFileSync(new URL('../../tracker/js/snippet.min.js', import.meta.url), 'utf8');

const names = (events) => events.map((e) => (e.type === 'track' ? e.event : `${e.type}:${e.context.page.path}`));

/** Pages opened by one test share a context; each test gets its own storage via a new user. */
async function withContext(fn) {
  const context = await browser.newContext();
  try { return await fn(context); } finally { await context.close(); }
}

/**
 * Delays the tracker's Wasm by `ms` on pages whose URL `slow` accepts (every page by
 * default), and fails it on those `fails` accepts: a visitor may leave before it arrives.
 */
async function delayTracker(context, ms, { slow = () => true, fails = () => false } = {}) {
  await context.route('**/cdp/tracker_bg.wasm', async (route) => {
    const page = route.request().frame().url();
    if (fails(page)) return route.fulfill({ status: 404, body: '' });
    if (slow(page)) await new Promise((r) => setTimeout(r, ms));
    await route.continue().catch(() => {}); // the page that asked may be gone
  });
}

/** Records every fetch to the collector as the page made it: keepalive, body size, ids, answer. */
const RECORD_POSTS = () => {
  const fetch = window.fetch;
  window.__posts = [];
  window.fetch = function (url, options) {
    const sent = fetch.apply(this, arguments);
    if (String(url).endsWith('/v1/batch')) {
      const post = { bytes: new Blob([options.body]).size, keepalive: options.keepalive, ids: JSON.parse(options.body).batch.map((e) => e.messageId) };
      window.__posts.push(post);
      sent.then((r) => { post.status = r.status; }, (e) => { post.error = String(e); });
    }
    return sent;
  };
};

test('events survive a failing then unreachable collector and arrive exactly once', () => withContext(async (context) => {
  await context.addInitScript(RECORD_POSTS);
  let mode = 'fail';
  const attempts = { fail: 0, down: 0 };
  await context.route('**/v1/batch', (route) => {
    if (mode === 'fail') { attempts.fail++; return route.fulfill({ status: 503, headers: { 'Retry-After': '1' }, body: '{}' }); }
    if (mode === 'down') { attempts.down++; return route.abort('connectionrefused'); }
    return route.continue();
  });
  const sent = watchBatches(context);
  const { page, anonymousId } = await openShop(context);
  await page.evaluate(() => { for (const n of ['One', 'Two', 'Three']) window.cdp.track(n); });
  assert.ok(await eventually(() => attempts.fail >= 2, { timeout: 15_000 }), 'retried while failing');
  mode = 'down';
  assert.ok(await eventually(() => attempts.down >= 1, { timeout: 15_000 }), 'retried while unreachable');
  const queued = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:')).length);
  assert.equal(queued, 4, 'all four events still in the durable queue');
  mode = 'up';
  const events = await eventually(async () => { const e = await profileEvents(worker.url, anonymousId); return e.length >= 4 ? e : null; }, { timeout: 30_000 });
  assert.deepEqual(names(events ?? []), ['page:/', 'One', 'Two', 'Three']);
  const accepted = () => sent.filter((b) => b.status === 200).flatMap((b) => b.events.map((e) => e.messageId));
  await eventually(() => accepted().length >= 4); // request events trail the responses a little
  await trackerIdle([page], sent);
  const delivered = accepted();
  assert.equal(delivered.length, 4, 'each event delivered once');
  assert.equal(new Set(delivered).size, 4);
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:')).length), 0, 'queue empty');
  // A retry goes without keepalive: the browser may have refused the first for its quota.
  const keepalive = (await page.evaluate(() => window.__posts)).map((p) => p.keepalive);
  assert.equal(keepalive[0], true, 'the first attempt with keepalive');
  assert.ok(keepalive.length > 2 && keepalive.slice(1).every((k) => k === false), `retries without: ${keepalive}`);
}));

test('an order completed right before the page closes still arrives', () => withContext(async (context) => {
  const { page, anonymousId } = await openShop(context, '/product?id=stove');
  await page.evaluate(() => window.cdp.orderCompleted({ order_id: 'CLOSE-1', total: 59, revenue: 59, currency: 'EUR' }));
  await page.close({ runBeforeUnload: true });
  const order = await eventually(async () => (await profileEvents(worker.url, anonymousId)).find((e) => e.event === 'Order Completed'));
  assert.equal(order?.properties.order_id, 'CLOSE-1');
}));

test('an order completed right before navigating away still arrives', () => withContext(async (context) => {
  const { page, anonymousId } = await openShop(context, '/product?id=lamp');
  await page.evaluate(() => { window.cdp.orderCompleted({ order_id: 'NAV-1', total: 39 }); location.href = 'about:blank'; });
  const order = await eventually(async () => (await profileEvents(worker.url, anonymousId)).find((e) => e.event === 'Order Completed'));
  assert.equal(order?.properties.order_id, 'NAV-1');
}));

test('events made offline are sent when the browser is back online', () => withContext(async (context) => {
  const { page, anonymousId } = await openShop(context);
  await eventually(async () => (await profileEvents(worker.url, anonymousId)).length === 1);
  await context.setOffline(true);
  await page.evaluate(() => { window.cdp.track('Offline One'); window.cdp.track('Offline Two'); });
  // Both stored in the durable queue, and still there: not sent while offline.
  const queued = () => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:')).length);
  assert.equal(await eventually(async () => ((await queued()) === 2 ? 2 : null)), 2, 'both queued');
  assert.equal((await profileEvents(worker.url, anonymousId)).length, 1, 'nothing arrives while offline');
  await context.setOffline(false);
  const events = await eventually(async () => { const e = await profileEvents(worker.url, anonymousId); return e.length === 3 ? e : null; });
  assert.deepEqual(names(events ?? []).slice(1), ['Offline One', 'Offline Two']);
}));

test('what was stored offline leaves when a page starts, with no new event recorded', () => withContext(async (context) => {
  // A site with manual page calls: loading a page records nothing by itself.
  await context.route('**/manual.html', (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>Manual</title>
    <script src="/cdp.js" data-write-key="demo-write-key" data-auto-page="false"></script>` }));
  const page = await context.newPage();
  await page.goto(`${worker.url}/manual.html`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  const anonymousId = await page.evaluate(() => window.cdp.anonymousId());
  await context.setOffline(true);
  await page.evaluate(() => { for (let i = 1; i <= 20; i++) window.cdp.track(`Offline ${i}`); });
  const queued = () => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:')).length);
  assert.equal(await eventually(async () => ((await queued()) === 20 ? 20 : null)), 20, 'all 20 stored');
  await page.close(); // the visitor leaves while offline
  await context.setOffline(false);
  const next = await context.newPage();
  await next.goto(`${worker.url}/manual.html`);
  await next.waitForFunction(() => window.cdp && window.cdp.loaded);
  const events = await eventually(async () => { const e = await profileEvents(worker.url, anonymousId); return e.length === 20 ? e : null; }, { timeout: 15_000 });
  assert.equal(events?.length, 20, 'the backlog left on start, though the page recorded nothing');
}));

test('a single-page app gets one page view per real route change', () => withContext(async (context) => {
  const sent = watchBatches(context);
  const { page, anonymousId } = await openShop(context, '/spa/');
  await page.click('a[href="/spa/product/stove"]');
  await page.waitForSelector('#add');
  await page.click('#add');
  await page.click('header a[href="/spa/cart"]');
  await page.evaluate(() => {
    // One navigation done the way some routers do it: replaceState, then pushState.
    history.replaceState(null, '', '/spa/cart?step=1');
    history.pushState(null, '', '/spa/checkout');
  });
  await page.evaluate(() => { location.hash = 'summary'; });                 // hash only: no page
  await page.evaluate(() => history.pushState(null, '', location.href));     // same URL: no page
  await page.evaluate(() => history.go(-3));                                  // popstate back to the cart
  await page.evaluate(() => window.cdp.flush());
  const expected = ['page:/spa/', 'page:/spa/product/stove', 'Product Viewed', 'Product Added', 'page:/spa/cart', 'Cart Viewed',
    'page:/spa/checkout', 'page:/spa/cart'];
  const wantedPages = expected.filter((n) => n.startsWith('page:'));
  const events = await eventually(async () => {
    const e = await profileEvents(worker.url, anonymousId);
    return names(e).filter((n) => n.startsWith('page:')).length >= wantedPages.length && e.length >= expected.length ? e : null;
  });
  const pages = names(events ?? []).filter((n) => n.startsWith('page:'));
  assert.deepEqual(pages, expected.filter((n) => n.startsWith('page:')));
  assert.ok(names(events).includes('Product Added'), 'npm package tracks e-commerce calls');
  const sentPages = () => sent.flatMap((b) => b.events).filter((e) => e.type === 'page').length;
  await eventually(() => sentPages() >= pages.length); // request events trail the responses a little
  await trackerIdle([page], sent);
  assert.equal(sentPages(), pages.length, 'no extra page event sent');
}));

test('the single-page shop records each step once and keeps its thank-you page', () => withContext(async (context) => {
  const { page, anonymousId } = await openShop(context, '/spa/');
  await page.click('a[href="/spa/product/stove"]');
  await page.click('#add');
  await page.click('#add');
  assert.equal(await page.textContent('#cart-count'), '2');
  await page.click('header a[href="/spa/cart"]');
  await page.click('a[href="/spa/checkout"]');
  assert.match(await page.textContent('.price'), /To pay: €118\.00/);
  await page.fill('#email', 'spa.buyer@example.com');
  await page.press('#email', 'Enter'); // by keyboard, as a person may
  await page.evaluate(() => window.cdp.flush());
  // The order is the last event the page records: once it is stored, everything before it is.
  const events = await eventually(async () => {
    const e = await profileEvents(worker.url, anonymousId);
    return names(e).includes('Order Completed') ? e : null;
  });
  // A route's page view and the events its page records happen in the same moment (in
  // either order), so each kind is checked in its own order, every event exactly once.
  const recorded = names(events ?? []);
  assert.deepEqual(recorded.filter((n) => n.startsWith('page:')),
    ['page:/spa/', 'page:/spa/product/stove', 'page:/spa/cart', 'page:/spa/checkout']);
  assert.deepEqual(recorded.filter((n) => !n.startsWith('page:')), ['Product Viewed', 'Product Added', 'Product Added',
    'Cart Viewed', 'Checkout Started', 'identify:/spa/checkout', 'Order Completed']);
  const checkout = events.find((e) => e.event === 'Checkout Started');
  assert.equal(checkout.properties.value, 118);
  assert.equal(await page.textContent('#view h1'), 'Thank you!', 'the thank-you page stays');
  assert.equal(await page.textContent('#cart-count'), '0');
}));

test('calls made before the tracker loads arrive, in the order they were made', () => withContext(async (context) => {
  const sent = watchBatches(context);
  await context.route('**/cdp.js', async (route) => { await new Promise((r) => setTimeout(r, 500)); await route.continue(); });
  await context.route('**/early.html', (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>Early</title>
    <script>${SNIPPET}</script>
    <script>cdp.track('First'); cdp.identify('early-user', { plan: 'pro' });</script>
    <script src="/cdp.js" data-write-key="demo-write-key" async></script>
    <script>cdp.track('Second', { n: 2 }); cdp.track('Third', { n: 3 });</script>` }));
  const page = await context.newPage();
  await page.goto(`${worker.url}/early.html`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  await page.evaluate(() => window.cdp.flush());
  const order = await eventually(() => { const e = sent.flatMap((b) => b.events); return e.length >= 5 ? e : null; });
  assert.deepEqual(order.map((e) => e.event ?? e.type), ['page', 'First', 'identify', 'Second', 'Third']);
  assert.equal(order[3].userId, 'early-user', 'calls after identify carry the user id');
  const times = order.map((e) => Date.parse(e.timestamp));
  assert.deepEqual(times, [...times].sort((a, b) => a - b), 'timestamps follow call order');
}));

test('calls on a page left before its tracker loaded arrive from the next page, once each', () => withContext(async (context) => {
  const { page, anonymousId } = await openShop(context, '/product?id=stove');
  await page.click('#add');
  // The cart page's tracker takes 3 s to arrive; the visitor moves on before that.
  await delayTracker(context, 3000, { slow: (url) => new URL(url).pathname === '/cart' });
  await page.goto(`${worker.url}/cart?utm_source=news&utm_campaign=winter`);
  assert.equal(await page.evaluate(() => !!window.cdp.loaded), false, 'the cart page is left before its tracker loads');
  await page.evaluate(() => { document.querySelector('#checkout').search = '?utm_source=mail'; }); // the next page's campaign
  await page.click('#checkout');
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  await page.evaluate(() => window.cdp.flush());
  const want = ['page:/product', 'Product Viewed', 'Product Added', 'page:/cart', 'Cart Viewed', 'page:/checkout', 'Checkout Started'];
  const events = await eventually(async () => { const e = await profileEvents(worker.url, anonymousId); return e.length >= want.length ? e : null; }, { timeout: 20_000 });
  // Pages send in parallel: the profile lists events as they arrived; their times say when they were made.
  assert.deepEqual(names(events ?? []).sort(), want.slice().sort(), 'once each');
  const at = (name) => Date.parse(events.find((e) => names([e])[0] === name).timestamp);
  assert.ok(at('page:/cart') <= at('Cart Viewed') && at('Cart Viewed') < at('page:/checkout'), 'with the time they were made');
  const cart = events.find((e) => e.event === 'Cart Viewed');
  assert.equal(cart.context.page.path, '/cart', 'with the page they were made on');
  assert.equal(cart.properties.products[0].product_id, 'stove');
  assert.deepEqual([cart.context.campaign?.source, cart.context.campaign?.name], ['news', 'winter'], 'and its campaign');
  assert.equal(events.find((e) => e.event === 'Checkout Started').context.campaign?.source, 'mail', 'not the next page\'s');
  assert.equal(events.find((e) => e.type === 'page' && e.context.page.path === '/cart').properties.title, 'Cart — Edge Outfitters');
  assert.equal(await page.evaluate(() => localStorage.getItem('cdp_pre')), null, 'nothing left over');
}));

test('records spoilt under the kept calls\' key, and calls without their name or id, cost only themselves', () => withContext(async (context) => {
  const sent = watchBatches(context);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const skipped = [];
  page.on('console', (m) => {
    if (m.text().includes('not loaded')) errors.push(m.text());
    if (m.text().includes('kept call skipped')) skipped.push(m.text());
  });
  await context.route('**/plain.html', (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>No tracker</title>' }));
  await page.goto(`${worker.url}/plain.html`);
  await page.evaluate(() => {
    const fine = { c: ['track', 'Kept Fine'], t: Date.now() - 1000, p: { url: `${location.origin}/gone`, path: '/gone' }, i: `${Date.now()}-fine` };
    localStorage.setItem('cdp_pre', JSON.stringify([5, null, 'x', { c: { 0: 'track', 1: 'Array-like' } }, fine]));
  });
  await page.goto(`${worker.url}/cart`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  const warnings = [];
  page.on('console', (m) => { if (m.text().includes('nothing recorded')) warnings.push(m.text()); });
  await page.evaluate(() => { cdp.track(''); cdp.alias(); cdp.group(null); return cdp.flush(); }); // as a page may, by mistake
  assert.equal(await eventually(() => (warnings.length >= 3 ? warnings.length : null)), 3, 'each mistaken call warns');
  assert.equal(await page.evaluate(() => cdp.userId()), undefined, 'and sets nothing');
  const events = await eventually(() => { const e = sent.flatMap((b) => b.events); return e.length >= 3 ? e : null; });
  await trackerIdle([page], sent);
  assert.deepEqual(names(sent.flatMap((b) => b.events)), ['Kept Fine', 'page:/cart', 'Cart Viewed'], 'the valid kept call, then this page\'s');
  assert.equal(events[0].context.page.path, '/gone');
  assert.equal(skipped.length, 1, 'the spoilt record that names a method is warned about');
  assert.deepEqual(errors, []);
}));

test('calls kept as a page is hidden before its tracker loads are sent once when it loads after all', () => withContext(async (context) => {
  const sent = watchBatches(context);
  await delayTracker(context, 2000);
  const page = await context.newPage();
  await page.goto(`${worker.url}/cart`);
  const hide = (hidden) => page.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { value: h, configurable: true });
    document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
  }, hidden);
  await hide(true); // as a phone does before it may discard a page in the background
  const kept = await page.evaluate(() => JSON.parse(localStorage.getItem('cdp_pre')).map((k) => k.c[0]));
  assert.deepEqual(kept, ['page', 'cartViewed'], 'the queue kept while hidden');
  await hide(false);
  await page.evaluate(() => cdp.track('Back Again'));
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  await page.evaluate(() => window.cdp.flush());
  await eventually(() => sent.flatMap((b) => b.events).length >= 3);
  await trackerIdle([page], sent); // nothing left that a second send could carry
  assert.deepEqual(sent.flatMap((b) => b.events).map((e) => e.event ?? e.type).sort(), ['Back Again', 'Cart Viewed', 'page'], 'each once');
  assert.equal(await page.evaluate(() => localStorage.getItem('cdp_pre')), null);
}));

test('a site serves the tracker under paths of its own (data-path)', () => withContext(async (context) => {
  const sent = watchBatches(context);
  const files = [];
  await context.route('**/assets/a7/*', (route) => {
    const name = new URL(route.request().url()).pathname.split('/').pop();
    files.push(name);
    const type = name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
    return route.fulfill({ contentType: type, body: readFileSync(new URL(`../../www/${name === 'l.js' ? 'cdp.js' : `cdp/${name}`}`, import.meta.url)) });
  });
  await context.route('**/neutral.html', (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>Neutral</title>
    <script src="/assets/a7/l.js" data-write-key="demo-write-key" data-endpoint="${worker.url}" data-path="/assets/a7/" async></script>` }));
  const cdpRequests = [];
  context.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/cdp')) cdpRequests.push(r.url()); });
  const page = await context.newPage();
  await page.goto(`${worker.url}/neutral.html`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  await page.evaluate(() => { window.cdp.track('Neutral'); return window.cdp.flush(); });
  const events = await eventually(() => { const e = sent.flatMap((b) => b.events); return e.length >= 2 ? e : null; });
  assert.deepEqual(events.map((e) => e.event ?? e.type), ['page', 'Neutral']);
  assert.deepEqual(files.sort(), ['l.js', 'tracker_bg.wasm']);
  assert.deepEqual(cdpRequests, [], 'nothing fetched from /cdp');
}));

test('the shop preloads the Wasm and fetches it once; the tracker\'s files load from any site and are cached', () => withContext(async (context) => {
  const { page } = await openShop(context);
  const wasm = await page.evaluate(() => performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.wasm')).length);
  assert.equal(wasm, 1, 'the preloaded response is the one the loader uses');
  for (const path of ['/cdp.js', '/cdp/tracker_bg.wasm']) {
    const res = await fetch(`${worker.url}${path}`, { headers: { Origin: 'https://other.example' } });
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get('access-control-allow-origin'), '*', path);
    assert.equal(res.headers.get('cross-origin-resource-policy'), 'cross-origin', path);
    assert.match(res.headers.get('cache-control') || '', /max-age=300, stale-while-revalidate=86400/, path);
  }
}));

test('with consent required and not given, nothing is sent or stored', () => withContext(async (context) => {
  const sent = watchBatches(context);
  await context.route('**/consent.html', (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>Consent</title>
    <script src="/cdp.js" data-write-key="demo-write-key" data-consent="required" async></script>` }));
  const page = await context.newPage();
  await page.goto(`${worker.url}/consent.html`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  // flush() resolves once whatever it had to send is answered: nothing, here.
  await page.evaluate(() => { window.cdp.track('Without Consent'); return window.cdp.flush(); });
  await trackerIdle([page], sent);
  const anonymousId = await page.evaluate(() => window.cdp.anonymousId());
  assert.equal(sent.length, 0, 'no request');
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_'))), []);
  assert.equal((await context.cookies()).filter((c) => c.name.startsWith('cdp_')).length, 0, 'no cookie');
  assert.deepEqual(await profileEvents(worker.url, anonymousId), [], 'nothing stored');

  await page.evaluate(() => { window.cdp.consent({ analytics: true }); return window.cdp.flush(); });
  const events = await eventually(async () => { const e = await profileEvents(worker.url, anonymousId); return e.length >= 2 ? e : null; });
  assert.deepEqual(names(events ?? []), ['page:/consent.html', 'Without Consent'], 'held events go out once consent is given');
  assert.equal(events[1].context.consent.categoryPreferences.analytics, true);
}));

test('a page left before its tracker loaded keeps only what its tracker would store, and never throws', () => withContext(async (context) => {
  // Every tracker takes 3 s to arrive (or never does, on a page asking for that), and every
  // page is left before.
  await delayTracker(context, 3000, { fails: (url) => url.includes('fail') });
  await context.route('**/early.html*', (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>Early</title>
    <script src="/cdp.js" data-write-key="demo-write-key" ${new URL(route.request().url()).searchParams.get('attrs') ?? ''} async></script>` }));
  await context.route('**/plain.html', (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>No tracker</title>' }));
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const keptAfter = async (attrs, calls, setup = () => {}) => {
    await page.goto(`${worker.url}/plain.html`);
    await page.evaluate(setup);
    const failed = attrs.includes('fail') && page.waitForEvent('console', (m) => m.text().includes('tracker not loaded'));
    await page.goto(`${worker.url}/early.html?attrs=${encodeURIComponent(attrs)}`);
    await page.evaluate(calls);
    await failed; // left only once the load has failed
    await page.goto(`${worker.url}/plain.html`);
    const [kept, drop] = await page.evaluate(() => { const k = [JSON.parse(localStorage.getItem('cdp_pre')), localStorage.getItem('cdp_drop')]; localStorage.clear(); return k; });
    dropped = drop;
    return (kept ?? []).map((k) => (k.c[0] === 'track' ? k.c[1] : k.c[0]));
  };
  let dropped;
  const required = 'data-consent="required"';
  assert.deepEqual(await keptAfter(required, () => cdp.track('No Consent')), [], 'consent required, not given');
  assert.deepEqual(await keptAfter(required, () => cdp.track('Stored Consent'), () => localStorage.setItem('cdp_consent', '{"analytics":true}')),
    ['page', 'Stored Consent'], 'consent given before');
  assert.deepEqual(await keptAfter(required, () => { cdp.track('Before'); cdp.consent({ analytics: true }); cdp.track('After'); }),
    ['page', 'Before', 'consent', 'After'], 'consent given while the tracker loads');
  assert.deepEqual(await keptAfter('', () => { cdp.track('Refused'); cdp.consent({ analytics: false }); }), ['consent'], 'consent refused: the choice only');
  assert.deepEqual(await keptAfter('', () => { const loop = {}; loop.self = loop; cdp.track('Circular', loop); cdp.track('Fine'); }),
    ['page', 'Fine'], 'a call that cannot be serialised costs only itself');
  const many = await keptAfter('', () => { for (let i = 1; i <= 104; i++) cdp.track(`Call ${i}`); });
  assert.deepEqual([many.length, many[0], many[99], dropped], [100, 'Call 5', 'Call 104', '5'], 'the 100 newest, the rest counted as dropped');
  assert.deepEqual(await keptAfter('data-auto-page="false"&fail', () => {}), [], 'the tracker could not load: an empty queue');
  assert.deepEqual(await keptAfter('&fail', () => cdp.track('Lost')), [], 'the tracker could not load: nothing kept');
  assert.deepEqual(await keptAfter('', () => cdp.track('Despite Junk'), () => localStorage.setItem('cdp_pre', '{"not":"a list"}')),
    ['page', 'Despite Junk'], 'whatever else was stored under the key');
  await page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }));
  assert.deepEqual(await keptAfter('', () => cdp.track('Under GPC')), [], 'Global Privacy Control');
  assert.deepEqual(await keptAfter('data-honor-gpc="false"', () => cdp.track('GPC Not Honoured')), ['page', 'GPC Not Honoured']);
  assert.deepEqual(errors, [], 'nothing thrown into the page');
}));

test('consent given or withdrawn in one tab applies at once in the other open tabs', () => withContext(async (context) => {
  const sent = watchBatches(context);
  await context.route('**/consent.html', (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>Consent</title>
    <script src="/cdp.js" data-write-key="demo-write-key" data-consent="required" async></script>` }));
  const open = async () => {
    const page = await context.newPage();
    await page.goto(`${worker.url}/consent.html`);
    await page.waitForFunction(() => window.cdp && window.cdp.loaded);
    return page;
  };
  const [a, b] = [await open(), await open()];
  await b.evaluate(() => window.cdp.track('Held In B'));
  await a.evaluate(() => window.cdp.consent({ analytics: true }));
  const visitor = await a.evaluate(() => window.cdp.anonymousId());
  const idInB = () => b.evaluate(() => window.cdp.anonymousId());
  assert.equal(await eventually(async () => ((await idInB()) === visitor ? visitor : null)), visitor, 'B took the visitor A stored');
  await b.evaluate(() => window.cdp.flush());
  const held = await eventually(() => sent.flatMap((x) => x.events).find((e) => e.event === 'Held In B'));
  assert.equal(held?.anonymousId, visitor, 'one visitor across tabs, for what was held too');

  await a.evaluate(() => window.cdp.consent({ analytics: false }));
  assert.ok(await eventually(async () => (await idInB()) !== visitor), 'B forgot the visitor');
  const before = sent.length;
  await b.evaluate(() => { window.cdp.track('After Withdrawal In A'); return window.cdp.flush(); });
  await trackerIdle([a, b], sent);
  assert.equal(sent.slice(before).flatMap((x) => x.events).filter((e) => e.event === 'After Withdrawal In A').length, 0, 'nothing sent');
  assert.deepEqual(await b.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:'))), [], 'nothing stored');
}));

test('two tabs sending at the same time send each event once (README: only a tab hidden mid-send can repeat one)', () => withContext(async (context) => {
  const sent = watchBatches(context);
  const a = await openShop(context);
  const b = await openShop(context, '/product?id=tent-2p');
  assert.equal(a.anonymousId, b.anonymousId, 'one visitor');
  await Promise.all([a.page, b.page].map((page, tab) => page.evaluate((t) => {
    for (let i = 0; i < 15; i++) window.cdp.track(`Tab ${t} Event ${i}`);
  }, tab)));
  const expected = 2 + 1 + 30; // two page views, one Product Viewed, thirty tracks
  const events = await eventually(async () => { const e = await profileEvents(worker.url, a.anonymousId); return e.length >= expected ? e : null; }, { timeout: 20_000 });
  assert.equal(events?.length, expected);
  await trackerIdle([a.page, b.page], sent);
  const ids = sent.flatMap((batch) => batch.events.map((e) => e.messageId));
  assert.equal(ids.length, new Set(ids).size, `no messageId sent twice (${ids.length} sent)`);
  assert.equal(ids.length, expected);
}));

test('a tab hidden while another sends leaves that tab\'s events to it', () => withContext(async (context) => {
  const sent = watchBatches(context);
  // Slow answers keep tab A's send, and its send lock, under way.
  await context.route('**/v1/batch', async (route) => { await new Promise((r) => setTimeout(r, 1500)); await route.continue(); });
  const a = await openShop(context);
  const b = await openShop(context, '/cart');
  await eventually(async () => (await a.page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:')).length)) === 0, { timeout: 15_000 });
  await a.page.evaluate(() => { window.cdp.track('A One'); window.cdp.flush(); });
  await a.page.evaluate(() => window.cdp.track('A Two'));
  // B is hidden: it sends its own events only, not A's, which A sends next.
  await b.page.evaluate(() => { window.cdp.track('B Hidden'); dispatchEvent(new Event('pagehide')); });
  const names = ['A One', 'A Two', 'B Hidden'];
  await eventually(() => names.every((n) => sent.some((x) => x.events.some((e) => e.event === n))), { timeout: 20_000 });
  await trackerIdle([a.page, b.page], sent);
  const ours = sent.flatMap((x) => x.events).filter((e) => names.includes(e.event));
  assert.deepEqual(ours.map((e) => e.event).sort(), names, 'each sent once');
}));

test('what a page failed to send as it closed goes out soon from the next page', () => withContext(async (context) => {
  let failing = false;
  await context.route('**/v1/batch', (route) => (failing ? route.abort('connectionrefused') : route.continue()));
  const sent = watchBatches(context);
  const { page } = await openShop(context, '/product?id=lamp');
  await eventually(async () => (await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:')).length)) === 0, { timeout: 15_000 });
  failing = true;
  await page.evaluate(() => window.cdp.track('Sent As The Page Closed'));
  await page.goto(`${worker.url}/cart`); // the hide send fails, and its page is gone
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  failing = false;
  // Its entry stays marked as being sent for a short while only, and the next page looks again.
  const arrived = await eventually(() => sent.some((b) => b.status === 200 && b.events.some((e) => e.event === 'Sent As The Page Closed')), { timeout: 40_000, interval: 500 });
  assert.ok(arrived, 'delivered from the next page');
}));

test('what waits in storage leaves when a tab is shown again, with no new event recorded', () => withContext(async (context) => {
  let failing = false;
  await context.route('**/v1/batch', (route) => (failing ? route.abort('connectionrefused') : route.continue()));
  await context.route('**/manual.html', (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>Manual</title>
    <script src="/cdp.js" data-write-key="demo-write-key" data-auto-page="false"></script>` }));
  const sent = watchBatches(context);
  const open = async () => {
    const page = await context.newPage();
    await page.goto(`${worker.url}/manual.html`);
    await page.waitForFunction(() => window.cdp && window.cdp.loaded);
    return page;
  };
  const show = (page, shown) => page.evaluate((s) => {
    Object.defineProperty(document, 'hidden', { value: !s, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, shown);
  const delivered = () => sent.some((b) => b.status === 200 && b.events.some((e) => e.event === 'Left Behind'));
  const a = await open();
  await show(a, false); // the visitor goes to another tab of the site
  const b = await open();
  failing = true;
  await b.evaluate(() => { window.cdp.track('Left Behind'); return window.cdp.flush(); });
  await b.goto('about:blank'); // and leaves it: its last send as it closes fails too
  failing = false;
  await a.waitForTimeout(12_000); // past the mark a send as a page closes leaves on its entries
  assert.ok(!delivered(), 'nothing sent while the other tab stays hidden and records nothing');
  await show(a, true);
  assert.ok(await eventually(delivered, { timeout: 15_000 }), 'sent by the tab shown again');
}));

test('marked elements and shop pages send the e-commerce events', () => withContext(async (context) => {
  const { page, anonymousId } = await openShop(context, '/product?id=stove');
  await page.click('#add');
  await page.goto(`${worker.url}/cart`);
  await page.click('#checkout');
  await page.waitForSelector('#email');
  await page.fill('#email', 'ada@example.com');
  await page.fill('#fullname', 'Ada');
  await page.click('button[type=submit]');
  await page.waitForSelector('#thanks:not([hidden])');
  await page.evaluate(() => window.cdp.flush());
  const want = ['Product Viewed', 'Product Added', 'Cart Viewed', 'Checkout Started', 'Order Completed'];
  let seen = [];
  const events = await eventually(async () => {
    const e = await profileEvents(worker.url, anonymousId);
    seen = e.map((x) => x.event ?? x.type);
    return want.every((n) => e.some((x) => x.event === n)) ? e : null;
  }, { timeout: 20_000 });
  assert.ok(events, `all of ${want.join(', ')} arrive; the profile has ${seen.join(', ')}`);
  const added = events.find((e) => e.event === 'Product Added');
  assert.equal(added.properties.product_id, 'stove');
  assert.equal(added.properties.price, 59);
  const order = events.find((e) => e.event === 'Order Completed');
  assert.equal(order.properties.products[0].product_id, 'stove');
  assert.equal(events.find((e) => e.type === 'identify').traits.email, 'ada@example.com');
}));

test('a large backlog goes out in batches the browser accepts, each event once', () => withContext(async (context) => {
  await context.addInitScript(RECORD_POSTS);
  const { page, anonymousId } = await openShop(context);
  await page.evaluate(() => {
    const filler = 'x'.repeat(1000);
    for (let i = 0; i < 200; i++) window.cdp.track('Backlog', { i, filler });
  });
  const posts = await eventually(async () => {
    await page.evaluate(() => window.cdp.flush());
    const p = await page.evaluate(() => window.__posts);
    const left = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:')).length);
    return left === 0 && p.every((x) => x.status || x.error) ? p : null;
  }, { timeout: 60_000 });
  assert.ok(posts, 'the queue emptied');
  // The browser frees a keepalive request's share of its 64 KB quota only once the answer
  // has been read: the tracker reads it before sending the next batch, so none is refused.
  assert.deepEqual(posts.filter((p) => p.error), [], 'no request refused');
  assert.ok(posts.every((p) => p.keepalive), 'every batch with keepalive');
  const delivered = posts.filter((p) => p.status === 200);
  assert.equal(delivered.length, posts.length);
  assert.ok(delivered.length >= 7, `${delivered.length} batches for about 200 KB`);
  for (const p of delivered) assert.ok(p.bytes <= 31 * 1024 || p.ids.length === 1, `a batch of ${p.bytes} B`);
  const ids = delivered.flatMap((p) => p.ids);
  assert.equal(ids.length, 201, 'the page view and 200 events');
  assert.equal(new Set(ids).size, ids.length, 'each delivered once');
  const lookup = `/v1/profiles/lookup?anonymousId=${encodeURIComponent(anonymousId)}`;
  const count = await eventually(async () => { const { body } = await admin(worker.url, lookup); return body?.eventCount >= 201 ? body.eventCount : null; }, { timeout: 30_000 });
  assert.equal(count, 201, 'each once in the profile');
}));

test('flush() resolves once a send already under way has delivered what was queued', () => withContext(async (context) => {
  let requests = 0;
  await context.route('**/v1/batch', async (route) => {
    requests++;
    await new Promise((r) => setTimeout(r, 1000));
    await route.continue();
  });
  const sent = watchBatches(context);
  const { page } = await openShop(context);
  await page.evaluate(() => window.cdp.track('A'));
  assert.ok(await eventually(() => requests >= 1), 'a send is under way');
  await page.evaluate(() => { window.cdp.track('B'); return window.cdp.flush(); });
  const queued = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cdp_e:')).length);
  assert.equal(queued, 0, 'when flush() resolves, the queue has been delivered');
  await eventually(() => sent.flatMap((b) => b.events).length >= 3);
  assert.deepEqual(sent.flatMap((b) => b.events).map((e) => e.event ?? e.type), ['page', 'A', 'B']);
}));
