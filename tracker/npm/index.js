// The npm entry: nothing runs on import; `load()` fetches the Wasm and starts the tracker.
import init, { Tracker } from './tracker.js';
import { createApi } from './api.js';

export { ECOMMERCE } from './api.js';

/**
 * Loads the tracker and sends the first page view (unless `autoPage: false`).
 * `wasmUrl` overrides where the `.wasm` file is fetched from; by default it sits beside
 * this module, which Vite, esbuild (with a file loader) and webpack 5 all resolve.
 */
export async function load(config) {
  const settings = Object.assign({ endpoint: globalThis.location ? location.origin : '' }, config);
  await init({ module_or_path: settings.wasmUrl || new URL('./tracker_bg.wasm', import.meta.url) });
  const api = createApi(new Tracker(settings));
  if (settings.autoPage !== false) api.page();
  return api;
}
