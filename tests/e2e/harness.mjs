// Shared by the end-to-end tests: start `wrangler dev` (real workerd) on a free port with a
// fresh state directory, open Chromium through playwright-core, and always stop both.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { mended } from '../../scripts/patch-miniflare.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WRITE_KEY = 'demo-write-key';
export const ADMIN_TOKEN = 'demo-admin-token';

/** The sources the end-to-end Worker knows: an open one, and one per policy under test. */
export const SOURCES = [
  { writeKey: WRITE_KEY, name: 'Demo shop', allowedOrigins: ['*'], identifiers: ['crm_id'] },
  { writeKey: 'strict-key', name: 'One origin', allowedOrigins: ['https://shop.example'] },
  { writeKey: 'consent-key', name: 'Consent required', consent: { required: true, category: 'analytics' } },
  { writeKey: 'nobots-key', name: 'Bots dropped', enrich: { bots: 'drop', ip: 'drop' } },
  { writeKey: 'jpy-key', name: 'Tokyo shop', currency: 'JPY' },
];

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** wrangler.toml without its `[build]` table, beside it (paths in it stay right): `make
 * test-e2e` has built everything, and wrangler dev would otherwise watch the sources and
 * rebuild and restart the Worker under a running test when one is edited (losing what its
 * local queues held). */
function frozenConfig() {
  const path = join(ROOT, '.wrangler-e2e.toml');
  const source = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
  writeFileSync(path, source.replace(/^\[build\]\n(?:(?!\[).*\n)*/m, ''));
  return path;
}

/** Starts the Worker under `wrangler dev`; resolves to { url, stop } once it answers.
 * `config` runs another wrangler.toml instead (the benchmark's empty baseline); `vars` sets
 * more Worker variables (`SOURCES` among them replaces the tests' sources);
 * `misconfigured` waits for the 500 a refused configuration gives; `keep` names a state
 * directory that outlives the Worker (a restart finds its storage again). */
export async function startWorker({ config = frozenConfig(), vars = {}, misconfigured = false, keep } = {}) {
  // The local queue broker loses messages under load without it (scripts/patch-miniflare.mjs).
  if (!mended()) throw new Error('miniflare\'s queue broker is not mended: run `make setup` (scripts/patch-miniflare.mjs)');
  const port = await freePort();
  const state = keep ?? mkdtempSync(join(tmpdir(), 'cdp-e2e-'));
  const child = spawn(
    join(ROOT, 'node_modules', '.bin', 'wrangler'),
    ['dev', ...(config ? ['--config', config] : []), '--ip', '127.0.0.1', '--port', String(port), '--persist-to', state,
      ...(vars.SOURCES ? [] : ['--var', `SOURCES:${JSON.stringify(SOURCES)}`]), '--var', `ADMIN_TOKEN:${ADMIN_TOKEN}`,
      '--var', 'ENVIRONMENT:development',
      ...Object.entries(vars).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
      '--show-interactive-dev-session=false', '--log-level', 'warn',
      // GET /__scheduled runs the Cron Trigger's handler now (the scheduled exports' test).
      '--test-scheduled'],
    // Its own process group, so stopping it also stops workerd and the build it spawns.
    { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', CI: 'true' } },
  );
  let output = '';
  // The last megabyte: a Worker that logs under load must not exhaust the test's memory.
  const keepOutput = (d) => { output = (output + d).slice(-1_000_000); };
  child.stdout.on('data', keepOutput);
  child.stderr.on('data', keepOutput);
  let stopped = false;
  const signal = (sig) => { try { process.kill(-child.pid, sig); } catch { /* already gone */ } };
  // Resolves once wrangler and its workerd children are gone: SIGTERM, then SIGKILL after 3 s.
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    signal('SIGTERM');
    const exited = child.exitCode !== null ? Promise.resolve()
      : new Promise((r) => child.once('exit', r));
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    signal('SIGKILL');
    if (!keep) rmSync(state, { recursive: true, force: true });
  };
  // Last resort if the test process dies without running its `after` hooks.
  process.once('exit', () => signal('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/v1/health-probe`);
      // A Worker started with a configuration it refuses answers every call with 500.
      const ready = misconfigured ? res.status === 500 : res.status === 404 || (config && res.ok);
      if (ready) return { url, stop, output: () => output };
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  await stop();
  throw new Error(`wrangler dev did not start on ${url}:\n${output}`);
}

/** Launches Debian's Chromium headless (a fresh temporary profile) with the flags this machine needs. */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext();
  return {
    context,
    newContext: (options) => browser.newContext(options),
    close: () => browser.close().catch(() => {}),
  };
}

/** Calls the admin API. */
export async function admin(url, path) {
  const res = await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  return { status: res.status, body: await res.json() };
}

/** Posts a Segment batch with the write key in HTTP Basic auth (extra headers optional). */
export async function sendBatch(url, batch, writeKey = WRITE_KEY, headers = {}) {
  const res = await fetch(`${url}/v1/batch`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Basic ${btoa(`${writeKey}:`)}`, ...headers },
    body: typeof batch === 'string' || batch instanceof Uint8Array ? batch : JSON.stringify({ batch, sentAt: new Date().toISOString() }),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

/** The pipeline's counters (`GET /v1/stats`). */
export async function counters(url) {
  return (await admin(url, '/v1/stats')).body;
}

/**
 * Resolves to the counters once the pipeline is idle with at least `accepted` events
 * accepted: every one of them delivered, dropped as a duplicate, suppressed, unlinked or
 * dead-lettered (`pending` 0). The fact to wait for before asserting that something did
 * not happen, instead of a sleep that passes whenever the pipeline is slower than it.
 */
export async function settled(url, accepted = 0, { timeout = 30_000 } = {}) {
  const idle = await eventually(async () => {
    const s = await counters(url);
    return s.pending === 0 && (s.accepted ?? 0) >= accepted ? s : null;
  }, { timeout, interval: 200 });
  if (!idle) throw new Error(`the pipeline did not settle at ${accepted} accepted events: ${JSON.stringify(await counters(url))}`);
  return idle;
}

/** Resolves once an archive replay of `events` events has been delivered (`replayed`). */
export async function replayed(url, before, events) {
  return eventually(async () => {
    const s = await counters(url);
    return (s.replayed ?? 0) >= (before.replayed ?? 0) + events && s.pending === 0 ? s : null;
  }, { timeout: 30_000, interval: 200 });
}

/** Polls `probe` until it returns a truthy value (events travel asynchronously). */
export async function eventually(probe, { timeout = 10_000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, interval));
  }
  return last;
}

/** Every `/v1/batch` request the pages of `context` send that got an answer:
 * `{ events, status }` each; `sent.open()` counts the requests made that have neither an
 * answer nor a failure yet. */
export function watchBatches(context) {
  const sent = [];
  let open = 0;
  const isBatch = (request) => request.url().endsWith('/v1/batch');
  context.on('request', (request) => { if (isBatch(request)) open += 1; });
  context.on('requestfailed', (request) => { if (isBatch(request)) open -= 1; });
  context.on('requestfinished', async (request) => {
    if (!isBatch(request)) return;
    const response = await request.response();
    sent.push({ events: JSON.parse(request.postData()).batch, status: response ? response.status() : 0 });
    open -= 1;
  });
  sent.open = () => open;
  return sent;
}

/**
 * Resolves once the trackers of `pages` have nothing left to send and every batch request
 * they made has its answer: no entry queued (`cdp_e:`) or marked as being sent (`cdp_f:`)
 * in their storage. A send after that would need an entry, so this is the fact to wait for
 * before asserting that an event was not sent twice.
 */
export async function trackerIdle(pages, sent) {
  const busy = (page) => page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith('cdp_e:') || k.startsWith('cdp_f:')));
  const idle = await eventually(async () => {
    if (sent.open() > 0) return false;
    for (const page of pages) if (await busy(page)) return false;
    return sent.open() === 0;
  }, { timeout: 20_000 });
  if (!idle) throw new Error(`the tracker did not go idle: ${sent.open()} requests unanswered`);
}

/** The events of the profile holding `anonymousId`, oldest first (empty if none). */
export async function profileEvents(url, anonymousId) {
  const { status, body } = await admin(url, `/v1/profiles/lookup?anonymousId=${encodeURIComponent(anonymousId)}`);
  return status === 200 ? body.events.slice().reverse() : [];
}
