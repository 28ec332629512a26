// Issue #10: the npm package, built into a tiny app by each bundler the README names and
// loaded in Chromium, must fetch its Wasm and deliver an event. Each build uses the command
// the package README gives, so the README cannot drift from what works. The package
// is installed as npm would install it (`npm pack`, unpacked into node_modules): a file left
// out of `files` or `exports` fails here as it would for a user, and Vite treats it as a
// dependency, not as linked source (its dev server handles the two differently).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { access, copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const PACKAGE = resolve(HERE, '../../tracker/npm');
const BIN = join(HERE, 'node_modules/.bin');
// The repository's own esbuild (the one that builds the tracker), not a second copy.
const ESBUILD = join(dirname(createRequire(import.meta.url).resolve('esbuild/package.json')), 'bin/esbuild');
const EVENT = 'Bundled App Loaded';
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.map': 'application/json' };

let tmp, project, browser;

before(async () => {
  await access(join(PACKAGE, 'tracker_bg.wasm')).catch(() => {
    throw new Error('tracker/npm has no tracker_bg.wasm: build the tracker first (make build)');
  });
  tmp = await mkdtemp(join(tmpdir(), 'cdp-bundlers-'));
  project = join(tmp, 'app');
  await cp(join(HERE, 'app'), project, { recursive: true });
  const { stdout } = await exec('npm', ['pack', PACKAGE, '--pack-destination', tmp, '--json', '--loglevel=error']);
  const installed = join(project, 'node_modules/@edge-cdp/tracker');
  await mkdir(installed, { recursive: true });
  await exec('tar', ['-xzf', join(tmp, JSON.parse(stdout)[0].filename), '-C', installed, '--strip-components=1']);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('a vite build delivers an event with no configuration', async (t) => {
  const out = join(tmp, 'vite');
  const ms = await timed(() => exec(join(BIN, 'vite'), ['build', '--outDir', out, '--emptyOutDir', '--logLevel', 'warn']));
  await deliversEvent(t, out, ms);
});

test('the vite dev server delivers an event with no configuration', async (t) => {
  const { createServer: createViteServer } = await import('vite');
  const collector = await serve(null);
  const vite = await createViteServer({
    root: project, logLevel: 'silent', server: { host: '127.0.0.1', port: 0, strictPort: true, hmr: false },
  });
  try {
    await vite.listen();
    const origin = `http://127.0.0.1:${vite.httpServer.address().port}`;
    await visit(t, `${origin}/?collector=${encodeURIComponent(collector.url)}`, collector);
  } finally {
    await vite.close();
    await collector.close();
  }
});

test('a webpack 5 build delivers an event with no configuration', async (t) => {
  const out = join(tmp, 'webpack');
  const ms = await timed(() => exec(join(BIN, 'webpack'), ['--mode', 'production', '--entry', './main.js', '--output-path', join(out, 'js')]));
  await writeFile(join(out, 'index.html'), html('<script defer src="/js/main.js"></script>'));
  await deliversEvent(t, out, ms);
});

test('an esbuild bundle delivers an event given wasmUrl from the file loader', async (t) => {
  const out = join(tmp, 'esbuild-loader');
  const ms = await timed(() => exec(ESBUILD, ['main-esbuild.js', '--bundle', '--format=esm', '--loader:.wasm=file',
    `--outdir=${join(out, 'assets')}`, '--public-path=/assets/', '--log-level=warning']));
  await writeFile(join(out, 'index.html'), html('<script type="module" src="/assets/main-esbuild.js"></script>'));
  await deliversEvent(t, out, ms);
});

test('an ESM esbuild bundle delivers an event with the .wasm copied beside it', async (t) => {
  const out = join(tmp, 'esbuild-copy');
  const ms = await timed(async () => {
    await exec(ESBUILD, ['main.js', '--bundle', '--format=esm', `--outdir=${out}`, '--log-level=warning']);
    await copyFile(join(project, 'node_modules/@edge-cdp/tracker/tracker_bg.wasm'), join(out, 'tracker_bg.wasm'));
  });
  await writeFile(join(out, 'index.html'), html('<script type="module" src="/main.js"></script>'));
  await deliversEvent(t, out, ms);
});

/** Serves a build's output with its own collector and checks the page delivers the event. */
async function deliversEvent(t, out, buildMs) {
  const server = await serve(out);
  try {
    await visit(t, `${server.url}/?collector=${encodeURIComponent(server.url)}`, server, buildMs);
  } finally {
    await server.close();
  }
}

/** Opens the page in a fresh context; the event must reach the collector, nothing may fail. */
async function visit(t, url, collector, buildMs) {
  const context = await browser.newContext();
  const problems = [];
  try {
    const page = await context.newPage();
    page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error' || m.text().startsWith('[cdp]')) problems.push(`console: ${m.text()}`); });
    const started = Date.now();
    await page.goto(url);
    const event = await eventually(() => collector.events().find((e) => e.type === 'track' && e.event === EVENT), problems);
    t.diagnostic(`${buildMs === undefined ? '' : `build ${buildMs} ms, `}event at the collector ${Date.now() - started} ms after opening the page`);
    assert.equal(collector.batches[0].writeKey, 'k');
    assert.ok(event.messageId, 'the event is the tracker\'s, with its messageId');
    assert.deepEqual([...problems, ...collector.missing.map((p) => `404 ${p} (server)`)], []);
  } finally {
    await context.close();
  }
}

/**
 * A static server over `dir` (none: collector only) that is also the collector: it keeps the
 * batches posted to /v1/batch and answers as the Worker does, with CORS for the page's origin.
 */
async function serve(dir) {
  const batches = [], missing = [];
  const server = createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    const cors = req.headers.origin ? { 'Access-Control-Allow-Origin': req.headers.origin, Vary: 'Origin' } : {};
    if (pathname === '/v1/batch') {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { ...cors, 'Access-Control-Allow-Methods': 'POST', 'Access-Control-Allow-Headers': 'Content-Type' });
        return res.end();
      }
      let body = '';
      for await (const chunk of req) body += chunk;
      batches.push(JSON.parse(body));
      res.writeHead(200, { ...cors, 'Content-Type': 'application/json' });
      return res.end('{"success":true}');
    }
    const file = dir && normalize(join(dir, decodeURIComponent(pathname === '/' ? '/index.html' : pathname)));
    try {
      if (!file || !file.startsWith(dir + sep)) throw new Error('outside');
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' });
      res.end(body);
    } catch {
      missing.push(pathname);
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    batches,
    missing,
    events: () => batches.flatMap((b) => b.batch || []),
    close: () => { server.closeAllConnections(); return new Promise((done) => server.close(done)); },
  };
}

function html(script) {
  return `<!doctype html>\n<meta charset="utf-8">\n<title>Bundled app</title>\n<link rel="icon" href="data:,">\n${script}\n`;
}

/** Runs a command in the app's directory; its output is in the error when it fails. */
async function exec(file, args) {
  try {
    return await promisify(execFile)(file, args, {
      cwd: project || HERE, env: { ...process.env, NO_COLOR: '1', BROWSERSLIST_IGNORE_OLD_DATA: '1' },
    });
  } catch (e) {
    throw new Error(`${file} ${args.join(' ')} failed:\n${e.stdout}\n${e.stderr}`);
  }
}

async function timed(f) {
  const started = Date.now();
  await f();
  return Date.now() - started;
}

/** Polls for up to 15 s, less once the page has thrown; says what went wrong in the page. */
async function eventually(f, problems) {
  for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
    const value = f();
    if (value) return value;
    if (problems.some((p) => p.startsWith('page error'))) break;
    await new Promise((done) => setTimeout(done, 100));
  }
  assert.fail(`no "${EVENT}" event reached the collector; the page saw: ${JSON.stringify(problems)}`);
}
