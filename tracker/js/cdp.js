/*
 * The script-tag loader. It defines `window.cdp` at once, so calls made before the Wasm
 * tracker has loaded are queued (with the time they were made) and replayed in order;
 * then it loads the tracker from `cdp/` beside itself.
 *
 *   <script src="/cdp.js" data-write-key="KEY" async></script>
 *
 * Settings are data attributes: data-write-key (required), data-endpoint (collector origin;
 * default where this script came from), data-consent="required", data-consent-category,
 * data-honor-gpc="false", data-honor-dnt="true", data-auto-page="false", data-track-hash,
 * data-flush-at, data-flush-interval, data-max-queue, data-cookie-domain, data-cookie-days,
 * data-path (the directory of tracker.js and tracker_bg.wasm; default cdp/ beside this script).
 * It never throws into the page: where Wasm cannot run (an old browser, a CSP without
 * 'wasm-unsafe-eval') the calls stay queued and nothing else happens.
 */
import { createApi, METHODS } from './api.js';

(function (w) {
  var script = document.currentScript;
  var queue = w.cdp = w.cdp || [];
  if (!script || queue.loaded || queue.loading) return;
  queue.loading = true;
  METHODS.forEach(function (m) {
    if (!queue[m]) queue[m] = function () {
      var call = [m].concat([].slice.call(arguments));
      call.t = Date.now();
      queue.push(call);
      return queue;
    };
  });
  var config = Object.assign({}, script.dataset);
  config.endpoint = config.endpoint || new URL(script.src).origin;
  if (config.autoPage !== 'false') {
    // The page view happened first, whatever was called before the loader ran.
    var start = Math.round(w.performance && performance.timeOrigin || Date.now());
    var view = ['page'];
    view.t = start;
    queue.unshift(view);
  }
  // The tracker's two files: in cdp/ beside this script, or in the directory data-path names.
  var dir = new URL(config.path || 'cdp/', script.src).href;
  import(dir + 'tracker.js').then(function (mod) {
    return mod.default({ module_or_path: dir + 'tracker_bg.wasm' }).then(function () {
      var api = createApi(new mod.Tracker(config));
      w.cdp = api;
      for (var i = 0; i < queue.length; i++) api.replay(queue[i], queue[i].t);
    });
  }).catch(function (e) { if (w.console) console.warn('[cdp] tracker not loaded:', e); });
})(window);
