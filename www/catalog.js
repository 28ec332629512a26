// The demo catalogue, shared by the script-tag shop and the single-page-app demo.
export const CURRENCY = 'EUR';

export const PRODUCTS = [
  { product_id: 'tent-2p', sku: 'EO-TENT-2P', name: 'Two-person tent', category: 'Shelter', price: 349 },
  { product_id: 'stove', sku: 'EO-STOVE-TI', name: 'Titanium stove', category: 'Kitchen', price: 59 },
  { product_id: 'pack-45', sku: 'EO-PACK-45', name: '45 l backpack', category: 'Packs', price: 189 },
  { product_id: 'lamp', sku: 'EO-LAMP-300', name: 'Head lamp 300 lm', category: 'Light', price: 39 },
];

export const product = (id) => PRODUCTS.find((p) => p.product_id === id);

export const money = (n) => `€${n.toFixed(2)}`;

const CART_KEY = 'shop_cart';

/** The cart: [{product_id, quantity}], kept in localStorage so it survives page loads. */
export function readCart() {
  try { return JSON.parse(localStorage.getItem(CART_KEY)) || []; } catch { return []; }
}

export function writeCart(cart) {
  localStorage.setItem(CART_KEY, JSON.stringify(cart));
}

/** Cart lines with product details, as the e-commerce spec's `products` array. */
export function cartProducts(cart = readCart()) {
  return cart.map((line) => ({ ...product(line.product_id), quantity: line.quantity })).filter((p) => p.name);
}

export const cartTotal = (products) => products.reduce((sum, p) => sum + p.price * p.quantity, 0);

export function addToCart(id, quantity = 1) {
  const cart = readCart();
  const line = cart.find((l) => l.product_id === id);
  if (line) line.quantity += quantity; else cart.push({ product_id: id, quantity });
  writeCart(cart);
}

export function removeFromCart(id) {
  writeCart(readCart().filter((l) => l.product_id !== id));
}
