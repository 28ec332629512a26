// The npm entry: nothing runs on import; `load()` fetches the Wasm and starts the tracker.
import init, { Tracker } from './tracker.js';
import { createApi } from './api.js';

export { ECOMMERCE } from './api.js';

/**
 * Loads the tracker and sends the first page view (unless `autoPage: false`).
 * `wasmUrl` overrides where the `.wasm` file is fetched from; by default it sits beside
 * this module, which Vite and webpack 5 follow with no configuration. esbuild does not:
 * see "Bundlers" in this package's README.
 */
export async function load(config) {
  const settings = Object.assign({ endpoint: globalThis.location ? location.origin : '' }, config);
  let wasm = settings.wasmUrl;
  try {
    wasm = wasm || new URL('./tracker_bg.wasm', import.meta.url);
    await init({ module_or_path: wasm });
  } catch (error) {
    // A bundler that did not emit the .wasm shows up as a compile error about a 404 or an
    // HTML page; the user needs to know which file was missing and where the fix is written.
    throw new Error(`[cdp] could not load tracker_bg.wasm from ${wasm}: ${error.message}. ` +
      'Bundlers: see the README of @edge-cdp/tracker (esbuild needs the wasmUrl option).', { cause: error });
  }
  const api = createApi(new Tracker(settings), settings);
  if (settings.autoPage !== false) api.page();
  return api;
}
