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
 * Calls queued on a page left before the tracker has loaded are kept for the next page.
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
  // Calls queued on a page left before its tracker has loaded would go with the page: they
  // are kept in storage, each with its page and a message id, and the tracker of the site's
  // next page sends them (two tabs that both take them send the same ids, which the
  // collector drops). The 100 newest at most; not where consent is required and not given,
  // or was refused; Global Privacy Control and Do Not Track are the next tracker's to apply,
  // as to any call.
  var KEPT = 'cdp_pre';
  var kept = function () { try { return JSON.parse(localStorage.getItem(KEPT)) || []; } catch (e) { return []; } };
  addEventListener('pagehide', function () {
    var l = location, d = document, given;
    try { given = JSON.parse(localStorage.cdp_consent)[config.consentCategory || 'analytics']; } catch (x) {}
    if (w.cdp != queue || !(given || given == null && config.consent != 'required')) return;
    var page = { url: l.href, path: l.pathname, search: l.search, title: d.title, referrer: d.referrer };
    var calls = queue.splice(0).filter(function (c) { return c[0] != 'ready'; }).map(function (c) {
      return { c: c, t: c.t, p: page, i: c.t + '-' + Math.random().toString(36).slice(2) };
    });
    try { localStorage.setItem(KEPT, JSON.stringify(kept().concat(calls).slice(-100))); } catch (x) {}
  });
  // The tracker's two files: in cdp/ beside this script, or in the directory data-path names.
  var dir = new URL(config.path || 'cdp/', script.src).href;
  import(dir + 'tracker.js').then(function (mod) {
    return mod.default({ module_or_path: dir + 'tracker_bg.wasm' }).then(function () {
      var api = createApi(new mod.Tracker(config));
      w.cdp = api;
      var calls = kept().concat(queue);
      try { localStorage.removeItem(KEPT); } catch (x) {}
      calls.forEach(function (c) { api.replay(c.c || c, c.t, c.c && c); });
    });
  }).catch(function (e) {
    queue = 0; // nothing is kept for a next page where the tracker cannot run either
    if (w.console) console.warn('[cdp] tracker not loaded:', e);
  });
})(window);
