// The page-facing API over the Wasm tracker, shared by the script-tag loader and the npm
// package: Segment-compatible names, e-commerce helpers, and no exception ever reaching the page.

/** Segment e-commerce spec v2 event names, by helper. */
export const ECOMMERCE = {
  productViewed: 'Product Viewed',
  productAdded: 'Product Added',
  productRemoved: 'Product Removed',
  cartViewed: 'Cart Viewed',
  checkoutStarted: 'Checkout Started',
  orderCompleted: 'Order Completed',
};

/** Every method a page may call, before or after the tracker has loaded. */
export const METHODS = ['page', 'track', 'identify', 'alias', 'group', 'reset', 'consent', 'flush', 'ready']
  .concat(Object.keys(ECOMMERCE));

function warn(error) {
  if (typeof console !== 'undefined') console.warn('[cdp]', error);
}

const str = (v) => (v == null ? undefined : String(v));
const obj = (v) => (v && typeof v === 'object' ? v : undefined);
// An id or name a call cannot do without: "undefined" would be recorded as one.
const need = (v, error) => {
  if (v == null || v === '') throw `${error}; nothing recorded`;
  return String(v);
};

/** Wraps a Wasm `Tracker` (started with `config`: endpoint and write key) in the public API. */
export function createApi(tracker, config) {
  const guard = (fn) => function () {
    try { return fn.apply(null, arguments); } catch (e) { warn(e); }
  };
  const api = {
    loaded: true,
    page: guard((name, properties) => {
      if (obj(name)) { properties = name; name = undefined; }
      tracker.page(str(name), obj(properties));
    }),
    track: guard((event, properties) => tracker.track(need(event, 'track() needs an event name'), obj(properties))),
    identify: guard((userId, traits) => {
      if (obj(userId)) { traits = userId; userId = undefined; }
      tracker.identify(str(userId), obj(traits));
    }),
    alias: guard((userId, previousId) => tracker.alias(need(userId, 'alias() needs a user id'), str(previousId))),
    group: guard((groupId, traits) => tracker.group(need(groupId, 'group() needs a group id'), obj(traits))),
    reset: guard(() => tracker.reset()),
    consent: guard((preferences) => tracker.consent(obj(preferences) || {})),
    flush: () => { try { return tracker.flush(); } catch (e) { warn(e); return Promise.resolve(); } },
    anonymousId: () => tracker.anonymousId,
    userId: () => tracker.userId,
    // The visitor's own audiences marked for personalization: { audiences, groups }; a
    // refusal rejects with its status.
    audiences: () => fetch(`${config.endpoint}/v1/personalize?${new URLSearchParams({ anonymousId: tracker.anonymousId, writeKey: config.writeKey })}`)
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status))),
    ready: guard((callback) => callback(api)),
    /**
     * @internal replays a call queued before load, stamped with the time it was made (and,
     * for one the loader kept from a page since closed, its record: page and message id).
     */
    replay: (call, at, kept) => {
      tracker.callTime(typeof at === 'number' ? at : undefined, kept);
      try { if (typeof api[call[0]] === 'function') api[call[0]].apply(null, call.slice(1)); } finally { tracker.callTime(); }
    },
  };
  Object.keys(ECOMMERCE).forEach((helper) => {
    api[helper] = (properties) => api.track(ECOMMERCE[helper], properties);
  });
  return api;
}
