// Helpers of the script-tag demo shop. Pages call the tracker through `cdp()`, which works
// before the tracker has loaded: calls go into the `window.cdp` queue and are replayed.
import { readCart } from '/catalog.js';

export function cdp(method, ...args) {
  const api = (window.cdp = window.cdp || []);
  if (api.loaded) return api[method](...args);
  const call = [method, ...args];
  call.t = Date.now();
  api.push(call);
}

/** Shows the number of items in the cart in the header. */
export function showCartCount() {
  const count = readCart().reduce((n, l) => n + l.quantity, 0);
  const badge = document.getElementById('cart-count');
  if (badge) badge.textContent = String(count);
}

export const $ = (id) => document.getElementById(id);
