/*
 * The script-tag loader. It defines `window.cdp` at once, so calls made before the Wasm
 * tracker has loaded are queued and replayed in order, then loads the tracker beside it.
 *
 *   <script src="/cdp.js" data-write-key="KEY" async></script>
 *
 * Attributes: data-write-key (required), data-endpoint (collector origin; default: where
 * this script came from), data-auto-page="false" (no page() on load).
 * It never throws into the page: where Wasm cannot run (old browser, a CSP without
 * 'wasm-unsafe-eval') calls are kept in the queue and nothing else happens.
 */
(function (w, d) {
  var script = d.currentScript;
  if (!script || w.cdp && w.cdp.loaded) return;
  var queue = w.cdp = w.cdp || [];
  var methods = ['page', 'track', 'ready'];
  methods.forEach(function (m) {
    queue[m] = queue[m] || function () { queue.push([m, [].slice.call(arguments)]); return queue; };
  });
  if (script.getAttribute('data-auto-page') !== 'false') queue.unshift(['page', []]);
  var base = new URL('.', script.src).href;
  var endpoint = script.getAttribute('data-endpoint') || new URL(script.src).origin;
  import(base + 'cdp/tracker.js').then(function (mod) {
    return mod.default({ module_or_path: base + 'cdp/tracker_bg.wasm' }).then(function () {
      var tracker = new mod.Tracker(script.getAttribute('data-write-key') || '', endpoint);
      var api = {
        loaded: true,
        tracker: tracker,
        anonymousId: function () { return tracker.anonymousId; },
        page: function (name, props) { return tracker.page(name, props).catch(warn); },
        track: function (name, props) { return tracker.track(name, props).catch(warn); },
        ready: function (fn) { try { fn(api); } catch (e) { warn(e); } }
      };
      w.cdp = api;
      queue.forEach(function (call) { if (api[call[0]]) api[call[0]].apply(null, call[1]); });
    });
  }).catch(warn);
  function warn(e) { if (w.console) console.warn('[cdp]', e); }
})(window, document);
