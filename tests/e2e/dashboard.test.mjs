// The dashboard in Chromium under `wrangler dev`, driven as a person would: sign in by
// keyboard, read the overview, find a profile by email and read its timeline, build an
// audience and see its size, and markup stored in traits and properties that never runs.
// Screenshots of each page go to test-results/dashboard/ for review.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_TOKEN, ROOT, admin, eventually, launchBrowser, sendBatch, settled, startWorker } from './harness.mjs';

const SHOTS = join(ROOT, 'test-results', 'dashboard');
let worker;
let browser;
let page;

const VIEWER = 'viewer-token-0123456789';
const MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  worker = await startWorker({ vars: { ADMIN_TOKENS: JSON.stringify([{ name: 'vera', token: VIEWER, role: 'viewer' }]) } });
  browser = await launchBrowser();
  const now = Date.now();
  const at = (s) => new Date(now - s * 1000).toISOString();
  await sendBatch(worker.url, [
    { type: 'identify', anonymousId: 'dash-ada', messageId: 'dash-1', timestamp: at(50), traits: { email: 'ada@dash.example', name: 'Ada', bio: MARKUP } },
    { type: 'page', anonymousId: 'dash-ada', messageId: 'dash-2', timestamp: at(40), properties: { path: '/shoes' } },
    { type: 'track', event: 'Product Viewed', anonymousId: 'dash-ada', messageId: 'dash-3', timestamp: at(30), properties: { product_id: 'stove', note: MARKUP } },
    { type: 'track', event: 'Order Completed', anonymousId: 'dash-ada', messageId: 'dash-4', timestamp: at(20), properties: { order_id: 'o-1', total: 59 } },
    { type: 'track', event: 'Product Viewed', anonymousId: 'dash-bob', messageId: 'dash-5', timestamp: at(10), properties: { product_id: 'lamp' } },
  ]);
  await settled(worker.url, 5);
  page = await browser.context.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
});
after(async () => {
  await browser?.close();
  await worker?.stop();
});

const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

test('the dashboard is served with a policy that forbids inline script', async () => {
  const res = await fetch(`${worker.url}/dashboard/`);
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
});

test('signing in by keyboard; a wrong token is refused with a reason', async () => {
  await page.goto(`${worker.url}/dashboard/`);
  await page.getByLabel('Admin token').focus();
  await page.keyboard.type('not-the-token');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /refused/);
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  assert.equal(await page.evaluate(() => location.search + location.hash.replace(/#\/?/, '')), '', 'no token in the URL');
});

test('the overview shows the pipeline\'s numbers', async (t) => {
  // A figure for the README (first page painted within 1 s locally), not an assertion.
  const paint = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime);
  t.diagnostic(`dashboard first contentful paint: ${Math.round(paint)} ms`);
  const stats = (await admin(worker.url, '/v1/stats')).body;
  const accepted = await page.locator('[data-counter="accepted"] .value').textContent();
  assert.equal(accepted, stats.accepted.toLocaleString('en-US'));
  await shot('overview');
});

test('the overview charts the range\'s events; the reports page shows the funnel the events imply', async () => {
  await page.locator('[data-report="events"] .value').waitFor();
  assert.equal(await page.locator('[data-report="events"] .value').textContent(), '5');
  assert.equal(await page.locator('[data-report="profiles"] .value').textContent(), '2');
  assert.equal(await page.locator('figure.chart canvas').count(), 4, 'four charts drawn');
  await page.getByRole('link', { name: 'Reports' }).click();
  const row = (name) => page.locator('#funnel ~ div table tbody tr', { hasText: name });
  await row('Product Viewed').waitFor();
  // Ada and Bob viewed; nobody added to a cart: the default path stops at its first step.
  assert.match(await row('Product Viewed').textContent(), /Product Viewed2/);
  assert.match(await row('Product Added').textContent(), /Product Added0/);
  // Edited by keyboard: viewed, then ordered.
  await page.getByRole('button', { name: 'Remove step 4' }).click();
  await page.getByRole('button', { name: 'Remove step 3' }).click();
  await page.getByLabel('Step 2').fill('Order Completed');
  await page.getByLabel('Step 2').press('Enter');
  await page.locator('#funnel ~ div table tbody tr:nth-child(2)', { hasText: 'Order Completed' }).waitFor();
  assert.equal(await page.locator('#funnel ~ div table tbody tr').count(), 2);
  assert.match(await row('Order Completed').textContent(), /Order Completed1.*50\.0 %/);
  assert.equal(await page.locator('[data-report="orders"] .value').textContent(), '1');
  await page.locator('#event-names option[value="Order Completed"]').waitFor({ state: 'attached' });
  await shot('reports');
  await page.getByRole('link', { name: 'Overview' }).click();
});

test('a profile found by email, with its traits, computed traits and timeline', async () => {
  await page.getByRole('link', { name: 'Profiles' }).click();
  await page.getByLabel('Condition 1').fill('identifiers.email~ada@dash');
  await page.getByRole('button', { name: 'Search' }).click();
  const link = page.getByRole('link', { name: /^p-/ });
  await link.first().waitFor();
  // The page lists every profile until the search's answer replaces the list.
  assert.ok(await eventually(async () => (await link.count()) === 1), 'one profile has that email');
  await shot('profiles');
  await link.first().click();
  await page.getByRole('heading', { name: 'Timeline' }).waitFor();
  await page.getByText('Order Completed').first().waitFor();
  const rows = await page.locator('h3:has-text("Timeline") + div table tbody tr').count();
  assert.equal(rows, 4, 'the four events of the profile');
  assert.ok(await page.getByText('ada@dash.example').count() > 0);
  await shot('profile');
});

test('markup in traits and properties is shown as text and never runs', async () => {
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.ok(await page.getByText(MARKUP, { exact: false }).count() > 0, 'the markup is visible as text');
  assert.equal(await page.locator('main img').count(), 0, 'no element was made from it');
});

test('building an audience shows its size while editing, and saving lists it', async () => {
  await page.getByRole('link', { name: 'Audiences' }).click();
  await page.getByRole('heading', { name: 'New audience' }).waitFor();
  await page.getByLabel('Key').fill('viewers');
  await page.getByLabel('Name').fill('Viewed a product');
  await page.getByLabel('Event').fill('Product Viewed');
  await page.getByText(/About 2 people/).waitFor({ timeout: 10_000 });
  await page.getByRole('button', { name: 'Add a condition' }).click();
  await page.getByLabel('Kind').nth(1).selectOption('didNot');
  await page.getByLabel('Event').nth(1).fill('Order Completed');
  await page.getByText(/About 1 person\b/).waitFor({ timeout: 10_000 });
  await shot('audience-builder');
  await page.getByRole('button', { name: 'Save audience' }).click();
  const listed = await eventually(async () => {
    const { body } = await admin(worker.url, '/v1/audiences/viewers');
    return body.state === 'ready' && body.size === 1 ? body : null;
  }, { timeout: 20_000 });
  assert.ok(listed, 'saved and backfilled');
  await page.reload();
  await page.getByRole('link', { name: 'Viewed a product' }).waitFor();
  await shot('audiences');
});

test('an audience\'s size over time; a destination and an export created from their pages', async () => {
  // The Cron Trigger records every audience's size once an hour.
  assert.equal((await fetch(`${worker.url}/__scheduled?cron=*+*+*+*+*`)).status, 200);
  const sizes = await eventually(async () => {
    const { body } = await admin(worker.url, '/v1/audiences/viewers/sizes?range=7d');
    return body.points?.length ? body : null;
  });
  assert.equal(sizes.points[0].size, 1);
  assert.equal(sizes.size, 1);
  await page.getByRole('link', { name: 'Viewed a product' }).click();
  await page.getByRole('heading', { name: 'Size over time' }).waitFor();
  await page.locator('figure.chart canvas').waitFor();
  await shot('audience');

  await page.getByRole('link', { name: 'Destinations' }).click();
  await page.getByLabel('Key', { exact: true }).fill('crm');
  await page.getByLabel('URL (webhook) or endpoint (segment)').fill('https://hooks.example.com/cdp');
  await page.getByLabel('Audiences (comma-separated)').fill('viewers');
  await page.getByRole('button', { name: 'Save' }).click();
  assert.match(await page.getByRole('status').textContent(), /signing secret, shown this once: whsec_/);
  await page.getByRole('cell', { name: 'crm', exact: true }).waitFor();
  await page.getByLabel('Key', { exact: true }).fill('bad key');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('alert').waitFor();
  await shot('destinations');

  await page.getByRole('link', { name: 'Exports' }).click();
  await page.getByLabel('Key', { exact: true }).fill('viewers_weekly');
  await page.getByLabel('Audience (or a group below)').fill('viewers');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('cell', { name: 'viewers_weekly', exact: true }).waitFor();
  assert.equal((await admin(worker.url, '/v1/exports/viewers_weekly')).body.schedule, '0 6 * * 1');
  await shot('exports');
});

test('a viewer reads but is refused an erase, by the API and so in the page; the audit names who acted', async () => {
  const as = (token, method, path) => fetch(`${worker.url}${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
  const profile = (await admin(worker.url, '/v1/profiles/lookup?anonymousId=dash-bob')).body;
  assert.equal((await as(VIEWER, 'GET', `/v1/profiles/${profile.id}`)).status, 200, 'a viewer reads');
  const refused = await as(VIEWER, 'DELETE', `/v1/profiles/${profile.id}`);
  assert.equal(refused.status, 403);
  assert.match((await refused.json()).error.message, /vera is a viewer token/);
  assert.equal((await as(VIEWER, 'GET', `/v1/profiles/${profile.id}/export`)).status, 403, 'nor export');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Admin token').fill(VIEWER);
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.goto(`${worker.url}/dashboard/#/profiles/${profile.id}`);
  await page.getByRole('button', { name: 'Erase…' }).waitFor();
  page.once('dialog', (dialog) => dialog.accept('ERASE'));
  await page.getByRole('button', { name: 'Erase…' }).click();
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /viewer token/);
  await shot('viewer-refused');
  assert.equal((await admin(worker.url, `/v1/profiles/${profile.id}`)).status, 200, 'still there');

  const erased = await fetch(`${worker.url}/v1/profiles/${profile.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(erased.status, 200);
  const audit = (await admin(worker.url, '/v1/audit')).body;
  assert.equal(audit.find((e) => e.action === 'erase' && e.profile === profile.id).by, 'admin');
});

test('at 390 px wide the pages still work', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.locator('[data-counter="accepted"]').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, 'nothing wider than the screen');
  await shot('overview-390');
});
