// The app each bundler builds: the tracker from the npm package, one event, sent at once.
// The test serves the collector and names it in `?collector=`, since under the Vite dev
// server the page and the collector are two origins.
import { load } from '@edge-cdp/tracker';

export async function run(options) {
  const endpoint = new URLSearchParams(location.search).get('collector') || location.origin;
  const cdp = await load({ writeKey: 'k', endpoint, autoPage: false, ...options });
  cdp.track('Bundled App Loaded');
  await cdp.flush();
}
