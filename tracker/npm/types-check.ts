// Checked by `make test-types` (tsc --noEmit), never shipped: the declarations in index.d.ts
// must describe the API that tracker/js/api.js really builds, and take the uses below.
import { createApi } from '../js/api.js';
import { ECOMMERCE, load, type Cdp, type TrackerConfig } from './index.js';

// Every member the declarations promise exists on the object the page gets; the
// e-commerce helpers are added from ECOMMERCE's keys at run time, where the compiler cannot
// follow, so they are checked against that list instead.
type Helper = 'productViewed' | 'productAdded' | 'productRemoved' | 'cartViewed' | 'checkoutStarted' | 'orderCompleted';
export const built: Omit<Cdp, Helper> = createApi({});

export async function uses(): Promise<string | undefined> {
  const config: TrackerConfig = { writeKey: 'k', endpoint: 'https://collect.example', consent: 'required', flushAt: 5 };
  const cdp = await load(config);
  cdp.page();
  cdp.page('Home', { section: 'top' });
  cdp.page({ section: 'top' });
  cdp.track('Signed Up', { plan: 'pro' });
  cdp.identify('u1', { email: 'a@example.com' });
  cdp.identify({ email: 'a@example.com' });
  cdp.alias('u1');
  cdp.group('acme', { seats: 5 });
  cdp.consent({ analytics: true, marketing: false });
  cdp.productViewed({ product_id: 'stove', price: 59 });
  cdp.orderCompleted({ order_id: 'o1', total: 59, currency: 'EUR', products: [{ product_id: 'stove', quantity: 1 }] });
  cdp.ready((ready) => ready.reset());
  await cdp.flush();
  const { audiences, groups } = await cdp.audiences();
  const shop: string[] | undefined = groups.shop;
  if (audiences.length && shop) cdp.track('Personalized');
  const named: string | undefined = ECOMMERCE.productAdded;
  return cdp.userId() ?? cdp.anonymousId() ?? named;
}
