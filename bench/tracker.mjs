// `make bench-tracker`: the tracker in headless Chromium against the Worker under
// `wrangler dev`. Prints time from script start to ready, main-thread time per track()
// (median of 50 rounds of 100 calls), bytes on the wire per event, and long tasks seen;
// then the same for peers' published trackers (Segment, Snowplow, PostHog) in the same
// browser, their collectors answered by the benchmark itself. A benchmark, not a test: it
// prints figures and asserts nothing.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, launchBrowser, startWorker } from '../tests/e2e/harness.mjs';

const PEERS_DIR = join(ROOT, 'bench', 'peers', 'node_modules');
const CALL = { round: 0, i: 0, price: 9.99, sku: 'SKU-1' };

/** Each peer: its script, what the page runs before it, how to know it is ready, one call. */
const PEERS = [
  {
    // Ours again, served like the peers (no wrangler dev in between), for a like-for-like row.
    name: 'edge-cdp, served like the peers',
    file: join(ROOT, 'www', 'cdp.js'),
    files: { 'cdp/tracker_bg.wasm': join(ROOT, 'www', 'cdp', 'tracker_bg.wasm') },
    before: `${readFileSync(join(ROOT, 'tracker', 'js', 'snippet.min.js'), 'utf8')}
      cdp.ready(function () { window.__ready = performance.now(); });`,
    attributes: 'data-write-key="bench" data-endpoint="https://collector.test"',
    track: (p) => window.cdp.track('Bench Event', p),
    breakdown: true,
  },
  {
    // The same, with the preload hint the README recommends: the Wasm is fetched while the
    // loader is, not after it.
    name: 'edge-cdp, served so, Wasm preloaded',
    file: join(ROOT, 'www', 'cdp.js'),
    files: { 'cdp/tracker_bg.wasm': join(ROOT, 'www', 'cdp', 'tracker_bg.wasm') },
    head: '<link rel="preload" href="/cdp/tracker_bg.wasm" as="fetch" crossorigin>',
    before: `${readFileSync(join(ROOT, 'tracker', 'js', 'snippet.min.js'), 'utf8')}
      cdp.ready(function () { window.__ready = performance.now(); });`,
    attributes: 'data-write-key="bench" data-endpoint="https://collector.test"',
    track: (p) => window.cdp.track('Bench Event', p),
    breakdown: true,
  },
  {
    name: 'Segment analytics-next (standalone)',
    file: '@segment/analytics-next/dist/umd/standalone.js',
    before: `window.analytics = []; analytics._writeKey = 'bench'; analytics._cdn = 'https://cdn.segment.com';
      ['track', 'page', 'identify', 'ready'].forEach(function (m) { analytics[m] = function () {
        var a = Array.prototype.slice.call(arguments); a.unshift(m); analytics.push(a); return analytics; }; });
      analytics.ready(function () { window.__ready = performance.now(); });`,
    track: (p) => window.analytics.track('Bench Event', p),
  },
  {
    name: 'Snowplow browser-tracker',
    file: '@snowplow/browser-tracker/dist/index.umd.min.js',
    after: `snowplowBrowserTracking.newTracker('sp', 'https://collector.test', { appId: 'bench', eventMethod: 'post' });
      window.__ready = performance.now();`,
    track: (p) => window.snowplowBrowserTracking.trackSelfDescribingEvent({
      event: { schema: 'iglu:com.example/bench_event/jsonschema/1-0-0', data: p } }),
  },
  {
    name: 'PostHog posthog-js (array.js)',
    file: 'posthog-js/dist/array.js',
    after: `posthog.init('bench', { api_host: 'https://collector.test', autocapture: false, capture_pageview: false,
        disable_session_recording: true, advanced_disable_decide: true, loaded: function () { window.__ready = performance.now(); } });`,
    track: (p) => window.posthog.capture('Bench Event', p),
  },
];

/** Median and p90 of main-thread time per call, over 50 rounds of 100 calls. */
async function perCallTime(page, call) {
  return page.evaluate(`(() => {
    const call = ${call.toString()};
    const rounds = [];
    for (let r = 0; r < 50; r++) {
      const t0 = performance.now();
      for (let i = 0; i < 100; i++) call({ ...${JSON.stringify(CALL)}, round: r, i });
      rounds.push((performance.now() - t0) / 100);
    }
    rounds.sort((a, b) => a - b);
    return { median: rounds[25], p90: rounds[45] };
  })()`);
}

const LONG_TASKS = () => {
  window.__longTasks = 0;
  new PerformanceObserver((list) => { window.__longTasks += list.getEntries().length; })
    .observe({ type: 'longtask', buffered: true });
};

/** Loads measured per peer (fresh contexts, peers in turn): the median ready time is shown. */
const LOADS = 5;

/**
 * One peer in a fresh context: its page and script served by the benchmark, its collector
 * answered 200. With `calls`, also main-thread time per call and long tasks.
 */
async function measurePeer(browser, peer, calls) {
  const path = peer.file.startsWith('/') ? peer.file : join(PEERS_DIR, peer.file);
  if (!existsSync(path)) return null;
  const context = await browser.newContext();
  let bytes = 0;
  await context.addInitScript(LONG_TASKS);
  await context.route('https://bench.test/**', (route) => {
    const url = route.request().url();
    if (url.endsWith('/peer.js')) return route.fulfill({ contentType: 'text/javascript', body: readFileSync(path) });
    const extra = Object.entries(peer.files || {}).find(([name]) => url.endsWith(`/${name}`));
    if (extra) {
      return route.fulfill({ contentType: extra[0].endsWith('.wasm') ? 'application/wasm' : 'text/javascript', body: readFileSync(extra[1]) });
    }
    return route.fulfill({ contentType: 'text/html', body: `<!doctype html><html><head><script>${peer.before || ''}</script>
      ${peer.head || ''}<script src="/peer.js" ${peer.attributes || ''}></script><script>${peer.after || ''}</script></head><body>bench</body></html>` });
  });
  await context.route('https://cdn.segment.com/**', (route) => {
    const url = route.request().url();
    if (url.includes('/settings')) {
      return route.fulfill({ contentType: 'application/json', body: JSON.stringify({
        integrations: { 'Segment.io': { apiKey: 'bench', apiHost: 'collector.test/v1', protocol: 'https' } }, plan: {} }) });
    }
    const bundle = join(PEERS_DIR, '@segment/analytics-next/dist/umd', url.split('/').pop());
    return existsSync(bundle) ? route.fulfill({ contentType: 'text/javascript', body: readFileSync(bundle) }) : route.fulfill({ status: 404 });
  });
  await context.route(/^https:\/\/(collector\.test|[a-z.]*posthog\.com)\//, (route) => {
    bytes += Buffer.byteLength(route.request().postData() || '');
    return route.fulfill({ status: 200, contentType: 'application/json', body: '{}' });
  });
  const page = await context.newPage();
  await page.goto('https://bench.test/');
  await page.waitForFunction(() => window.__ready, null, { timeout: 15_000 });
  // Where the time goes: the loader's request, the Wasm's, and what is left (compile,
  // instantiate, start), each from the loader's start.
  const { ready, parts } = await page.evaluate(() => {
    const entries = performance.getEntriesByType('resource');
    const script = entries.find((e) => e.name.endsWith('/peer.js'));
    const wasm = entries.find((e) => e.name.endsWith('.wasm'));
    const from = (t) => t - script.startTime;
    return {
      ready: window.__ready - script.startTime,
      parts: wasm && { loader: from(script.responseEnd), wasmStart: from(wasm.startTime), wasmEnd: from(wasm.responseEnd) },
    };
  });
  if (!calls) { await context.close(); return { ready, parts }; }
  const perCall = await perCallTime(page, peer.track);
  await page.waitForTimeout(4000);
  const longTasks = await page.evaluate(() => window.__longTasks);
  await context.close();
  return { ready, parts, perCall, bytes, longTasks };
}

const worker = await startWorker();
const browser = await launchBrowser();
try {
  const context = await browser.newContext();
  let bodyBytes = 0;
  let events = 0;
  let dropped = 0;
  // Requests the collector answered (a keepalive request the browser refuses never leaves
  // it). Events count as delivered from 2xx answers; other answers are retried.
  let retried = 0;
  context.on('requestfinished', async (request) => {
    const response = request.url().endsWith('/v1/batch') && (await request.response());
    if (!response) return;
    const body = request.postData() || '';
    bodyBytes += Buffer.byteLength(body);
    if (response.status() >= 300) { retried++; return; }
    const batch = JSON.parse(body);
    events += batch.batch.length;
    dropped += batch.dropped || 0;
  });
  await context.addInitScript(LONG_TASKS);
  const page = await context.newPage();
  await page.goto(`${worker.url}/`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  const ready = await page.evaluate(() => {
    const loader = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/cdp.js'));
    return new Promise((resolve) => window.cdp.ready(() => resolve({ loaderStart: loader.startTime, readyAt: performance.now() })));
  });
  const perCall = await perCallTime(page, (p) => window.cdp.track('Bench Event', p));
  await page.evaluate(() => window.cdp.flush());
  await page.waitForTimeout(3000);
  await page.evaluate(() => window.cdp.flush());
  await page.waitForTimeout(1000);
  const longTasks = await page.evaluate(() => window.__longTasks);
  console.log('tracker in headless Chromium, against wrangler dev on loopback');
  console.log(`  script start → ready          ${(ready.readyAt - ready.loaderStart).toFixed(1)} ms (includes Wasm fetch and compile)`);
  console.log(`  track() main-thread time      median ${(perCall.median * 1000).toFixed(1)} µs, p90 ${(perCall.p90 * 1000).toFixed(1)} µs per call (5,000 calls)`);
  console.log(`  bytes on the wire per event   ${(bodyBytes / Math.max(events, 1)).toFixed(0)} B (request body; ${events} events)`);
  console.log(`  events delivered / dropped     ${events} / ${dropped} (the browser queue keeps at most 1,000; the oldest go first)`);
  console.log(`  batches answered non-2xx      ${retried} (retried; local workerd answers 5xx when it stalls)`);
  console.log(`  long tasks (> 50 ms) seen     ${longTasks} (during load, 5,000 calls and their delivery)`);

  console.log('\npeers in the same browser (5,000 calls each; their collectors answered by the benchmark)');
  console.log(`  ${'tracker'.padEnd(40)} ${'ready'.padStart(9)} ${'track() median'.padStart(15)} ${'p90'.padStart(9)} ${'wire B/event'.padStart(13)} ${'long tasks'.padStart(11)}`);
  const line = (name, r) => console.log(`  ${name.padEnd(40)} ${(r.ready.toFixed(1) + ' ms').padStart(9)} ${((r.perCall.median * 1000).toFixed(1) + ' µs').padStart(15)} ${((r.perCall.p90 * 1000).toFixed(1) + ' µs').padStart(9)} ${String(r.wire).padStart(13)} ${String(r.longTasks).padStart(11)}`);
  line('edge-cdp (this tracker)', { ready: ready.readyAt - ready.loaderStart, perCall, wire: (bodyBytes / Math.max(events, 1)).toFixed(0), longTasks });
  // Each peer's calls once; its load LOADS times, the peers taking turns, so that a slow
  // moment of the machine or a browser still warming up does not fall on one of them.
  const results = new Map();
  for (const peer of PEERS) {
    try {
      const r = await measurePeer(browser, peer, true);
      if (r) results.set(peer, { ...r, loads: [r] });
      else console.log(`  ${peer.name}: not installed (run make size)`);
    } catch (e) {
      console.log(`  ${peer.name}: could not be measured (${e.message.split('\n')[0]})`);
    }
  }
  for (let i = 1; i < LOADS; i++) {
    for (const [peer, r] of results) r.loads.push(await measurePeer(browser, peer, false));
  }
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const [peer, r] of results) line(peer.name, { ...r, ready: median(r.loads.map((l) => l.ready)), wire: 'n/a' });
  console.log(`  (ready: median of ${LOADS} loads in fresh contexts, from the script's request to ready)`);
  for (const [peer, r] of results) {
    const parts = r.loads.map((l) => l.parts).filter(Boolean);
    if (!peer.breakdown || !parts.length) continue;
    const m = (k) => median(parts.map((p) => p[k])).toFixed(1);
    console.log(`  ${peer.name}: loader done ${m('loader')} ms, Wasm requested ${m('wasmStart')} ms and arrived ${m('wasmEnd')} ms, ready ${median(r.loads.map((l) => l.ready)).toFixed(1)} ms (the rest: compile, instantiate, start)`);
  }
} finally {
  await browser.close();
  await worker.stop();
}
