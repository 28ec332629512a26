// The single-page-app demo: client-side routing, a cart and a checkout, tracked with the npm
// package (`@edge-cdp/tracker`). Route changes are page views without any code here: the
// tracker watches the History and Navigation APIs.
import { load } from '@edge-cdp/tracker';
import {
  PRODUCTS, CURRENCY, product, money, readCart, writeCart, cartProducts, cartTotal, addToCart, removeFromCart,
} from '../../www/catalog.js';

const view = document.getElementById('view');
const cdp = await load({ writeKey: 'demo-write-key', endpoint: location.origin });
window.cdp = cdp; // for the end-to-end tests and for trying calls in the console

const routes = [
  [/^\/spa\/?$/, home],
  [/^\/spa\/product\/([\w-]+)$/, productPage],
  [/^\/spa\/cart$/, cartPage],
  [/^\/spa\/checkout$/, checkoutPage],
];

// A route's view is drawn once per navigation: its page records the route's events
// (Product Viewed, Checkout Started), so redrawing it for a cart change would record them again.
function render() {
  const path = location.pathname;
  for (const [pattern, page] of routes) {
    const match = path.match(pattern);
    if (match) { page(...match.slice(1)); break; }
  }
  showCartCount();
}

function showCartCount() {
  document.getElementById('cart-count').textContent = String(readCart().reduce((n, l) => n + l.quantity, 0));
}

function navigate(path) {
  history.pushState(null, '', path);
  render();
}

document.addEventListener('click', (e) => {
  const link = e.target.closest && e.target.closest('a[href^="/spa"]');
  if (!link || e.metaKey || e.ctrlKey) return;
  e.preventDefault();
  navigate(link.getAttribute('href'));
});
addEventListener('popstate', render);

function home() {
  document.title = 'Shop — Edge Outfitters SPA';
  view.innerHTML = `<h1>Gear, without page loads</h1><ul class="products">${PRODUCTS.map((p) =>
    `<li><a href="/spa/product/${p.product_id}"><strong>${p.name}</strong><span>${money(p.price)}</span></a></li>`).join('')}</ul>`;
}

function productPage(id) {
  const p = product(id);
  if (!p) { view.innerHTML = '<h1>No such product</h1>'; return; }
  document.title = `${p.name} — Edge Outfitters SPA`;
  view.innerHTML = `<h1>${p.name}</h1><p class="price">${money(p.price)}</p>
    <button id="add" type="button">Add to cart</button> <a href="/spa/cart">Cart</a>`;
  cdp.productViewed({ ...p, currency: CURRENCY });
  document.getElementById('add').onclick = () => {
    addToCart(p.product_id);
    cdp.productAdded({ ...p, quantity: 1, currency: CURRENCY });
    showCartCount();
  };
}

function cartPage() {
  document.title = 'Cart — Edge Outfitters SPA';
  const products = cartProducts();
  cdp.cartViewed({ products, currency: CURRENCY, value: cartTotal(products) });
  drawCart();
}

// Removing a line redraws the cart in place: the visitor did not view the cart again.
function drawCart() {
  const products = cartProducts();
  view.innerHTML = `<h1>Your cart</h1><table class="cart">${products.map((p) =>
    `<tr><td>${p.name}</td><td>× ${p.quantity}</td><td><button type="button" data-remove="${p.product_id}">Remove</button></td></tr>`).join('')}</table>
    <p class="price">Total: ${money(cartTotal(products))}</p><p><a class="button" href="/spa/checkout">Checkout</a></p>`;
  view.querySelectorAll('[data-remove]').forEach((b) => {
    b.onclick = () => {
      const line = products.find((p) => p.product_id === b.dataset.remove);
      removeFromCart(b.dataset.remove);
      cdp.productRemoved({ ...line, currency: CURRENCY });
      drawCart();
      showCartCount();
    };
  });
}

function checkoutPage() {
  document.title = 'Checkout — Edge Outfitters SPA';
  const products = cartProducts();
  const total = cartTotal(products);
  cdp.checkoutStarted({ products, currency: CURRENCY, value: total });
  view.innerHTML = `<h1>Checkout</h1><form id="order"><label>Email <input id="email" type="email" required></label>
    <p class="price">To pay: ${money(total)}</p><button type="submit">Place order</button></form>`;
  document.getElementById('order').onsubmit = (e) => {
    e.preventDefault();
    const orderId = `SPA-${Date.now().toString(36).toUpperCase()}`;
    cdp.identify({ email: document.getElementById('email').value });
    cdp.orderCompleted({ order_id: orderId, total, revenue: total, currency: CURRENCY, products });
    writeCart([]);
    view.innerHTML = `<h1>Thank you!</h1><p>Order <code>${orderId}</code> is on its way.</p><p><a href="/spa/">Back to the shop</a></p>`;
    showCartCount();
  };
}

render();
