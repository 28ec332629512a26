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
 * data-path (the directory of tracker_bg.wasm; default cdp/ beside this script).
 * Calls queued on a page left before the tracker has loaded are kept for the next page.
 * It never throws into the page: where Wasm cannot run (an old browser, a CSP without
 * 'wasm-unsafe-eval') the calls stay queued and nothing else happens.
 */
import { createApi, METHODS } from './api.js';
// The Wasm glue is bundled into this file (scripts/build-tracker.sh): one script to fetch
// before the Wasm, not two in a row.
import init, { Tracker } from '../pkg/tracker.js';

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
  // collector drops). The 100 newest at most (older ones counted as dropped), and only
  // where the tracker would store them: not under Global Privacy Control or Do Not Track
  // where honoured, nor without consent where it is required or was refused (the last
  // choice queued, else the stored one), save the consent calls themselves. A call that
  // cannot be serialised is left out alone; the queue stays as it is for a page that comes
  // back from the back/forward cache, its kept calls marked.
  var KEPT = 'cdp_pre', failed;
  // (Records other than ours replay as nothing: `replay` skips what names no method.)
  var kept = function () {
    try { var v = JSON.parse(localStorage.getItem(KEPT)); } catch (e) {}
    return Array.isArray(v) ? v : [];
  };
  var on = function (v, d) { return v == null ? d : !/^(false|0|no)$/.test(v); }; // as the tracker reads flags
  // On pagehide, or when the page is hidden: a mobile browser may discard a hidden page
  // without a pagehide. If the page comes back and its tracker loads, it replays the kept
  // calls from storage (unless another tab's tracker has sent them) and skips them in the queue.
  function keep(e) {
    if (failed || w.cdp !== queue || e.type != 'pagehide' && !document.hidden) return;
    var n = navigator, l = location, d = document, category = config.consentCategory || 'analytics', given;
    try { given = Object(JSON.parse(localStorage.getItem('cdp_consent')))[category]; } catch (x) {}
    try {
      queue.forEach(function (c) { if (c[0] == 'consent') given = Object(c[1])[category]; });
      // The tracker's rules (consent.rs), written again here: its Wasm is not there yet, and
      // nothing may be stored where they say no. A choice is a boolean; anything else is none.
      var allowed = !(on(config.honorGpc, true) && n.globalPrivacyControl === true ||
        on(config.honorDnt, false) && (n.doNotTrack == '1' || w.doNotTrack == '1')) &&
        (given === true || typeof given != 'boolean' && config.consent != 'required');
      var page = { url: l.href, path: l.pathname, search: l.search, title: d.title, referrer: d.referrer };
      var mine = [], records = kept().map(JSON.stringify);
      queue.forEach(function (c) {
        if (!c.k && c[0] != 'ready' && (allowed || c[0] == 'consent')) try {
          records.push(JSON.stringify({ c: c, t: c.t, p: page, i: c.t + '-' + Math.random().toString(36).slice(2) }));
          mine.push(c);
        } catch (x) {}
      });
      localStorage.setItem(KEPT, '[' + records.slice(-100) + ']');
      mine.forEach(function (c) { c.k = 1; });
      // Counted where the tracker counts the events its full queue drops, and reported so.
      if (records.length > 100) localStorage.setItem('cdp_drop', (+localStorage.getItem('cdp_drop') || 0) + records.length - 100);
    } catch (x) {}
  }
  addEventListener('pagehide', keep);
  addEventListener('visibilitychange', keep);
  // The Wasm, in cdp/ beside this script or in the directory data-path names, is fetched
  // at once and compiled as it arrives.
  Promise.resolve().then(function () {
    return init({ module_or_path: fetch(new URL((config.path || 'cdp/') + 'tracker_bg.wasm', script.src)) });
  }).then(function () {
    var api = createApi(new Tracker(config), config);
    w.cdp = api;
    var calls = kept().concat(queue);
    try { localStorage.removeItem(KEPT); } catch (x) {}
    // A record spoilt in storage costs only itself, not the calls after it.
    calls.forEach(function (c) {
      try { if (c && !c.k) api.replay(c.c || c, c.t, c.c && c); } catch (x) { console.warn('[cdp] kept call skipped:', x); }
    });
  }).catch(function (e) {
    failed = 1; // nothing is kept for a next page where the tracker cannot run either
    if (w.console) console.warn('[cdp] tracker not loaded:', e);
  });
})(window);
