// `make bench-tracker`: the tracker in headless Chromium against the Worker under
// `wrangler dev`. Prints time from script start to ready, main-thread time per track()
// (median of 50 rounds of 100 calls), bytes on the wire per event, and long tasks seen.
// A benchmark, not a test: it prints figures and asserts nothing.
import { launchBrowser, startWorker } from '../tests/e2e/harness.mjs';

const worker = await startWorker();
const browser = await launchBrowser();
try {
  const context = await browser.newContext();
  let bodyBytes = 0;
  let events = 0;
  let dropped = 0;
  context.on('request', (request) => {
    if (!request.url().endsWith('/v1/batch')) return;
    const body = request.postData() || '';
    bodyBytes += Buffer.byteLength(body);
    const batch = JSON.parse(body);
    events += batch.batch.length;
    dropped += batch.dropped || 0;
  });
  await context.addInitScript(() => {
    window.__longTasks = 0;
    new PerformanceObserver((list) => { window.__longTasks += list.getEntries().length; })
      .observe({ type: 'longtask', buffered: true });
  });
  const page = await context.newPage();
  await page.goto(`${worker.url}/`);
  await page.waitForFunction(() => window.cdp && window.cdp.loaded);
  const ready = await page.evaluate(() => {
    const loader = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/cdp.js'));
    return new Promise((resolve) => window.cdp.ready(() => resolve({ loaderStart: loader.startTime, readyAt: performance.now() })));
  });
  const perCall = await page.evaluate(() => {
    const rounds = [];
    for (let r = 0; r < 50; r++) {
      const t0 = performance.now();
      for (let i = 0; i < 100; i++) window.cdp.track('Bench Event', { round: r, i, price: 9.99, sku: 'SKU-1' });
      rounds.push((performance.now() - t0) / 100);
    }
    rounds.sort((a, b) => a - b);
    return { median: rounds[25], p90: rounds[45] };
  });
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
  console.log(`  long tasks (> 50 ms) seen     ${longTasks} (during load, 5,000 calls and their delivery)`);
} finally {
  await browser.close();
  await worker.stop();
}
