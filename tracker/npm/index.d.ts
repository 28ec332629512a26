/** What `audiences()` answers: audience keys, and the same by segment group. */
export interface Audiences {
  audiences: string[];
  groups: Record<string, string[]>;
}

/** Settings of the tracker. Only `writeKey` is required. */
export interface TrackerConfig {
  /** The source's write key. */
  writeKey: string;
  /** Collector origin (default: the page's origin). Events go to `${endpoint}/v1/batch`. */
  endpoint?: string;
  /**
   * Where to fetch `tracker_bg.wasm` from, resolved against the page (default: beside this
   * module, which Vite and webpack 5 follow). With esbuild, pass the default import of
   * `@edge-cdp/tracker/tracker_bg.wasm` built with `--loader:.wasm=file`.
   */
  wasmUrl?: string | URL;
  /** Send a page view on load (default true). Route changes always send one. */
  autoPage?: boolean;
  /** Send once this many events are queued (default 20). */
  flushAt?: number;
  /** Otherwise send this many milliseconds after an event (default 1000). */
  flushInterval?: number;
  /** Most events kept in the browser's queue, oldest dropped first (default 1000). */
  maxQueue?: number;
  /** Domain of the anonymous-id cookie, to share it with subdomains. */
  cookieDomain?: string;
  /** Lifetime of the anonymous-id cookie in days (default 365). */
  cookieDays?: number;
  /** `"required"`: nothing is stored or sent until `consent({[consentCategory]: true})`. */
  consent?: 'required' | boolean;
  /** The consent category analytics needs (default `"analytics"`). */
  consentCategory?: string;
  /** Global Privacy Control stops collection (default true). */
  honorGpc?: boolean;
  /** Do Not Track stops collection (default false). */
  honorDnt?: boolean;
  /** A change of `#fragment` alone is a new page (hash-routed apps; default false). */
  trackHash?: boolean;
}

/** Properties or traits: any JSON-serialisable object. */
export type Properties = Record<string, unknown>;

/** A product, as the e-commerce spec names its fields. */
export interface Product extends Properties {
  product_id?: string; sku?: string; name?: string; category?: string;
  price?: number; quantity?: number; currency?: string;
}

/** An order or cart, as the e-commerce spec names its fields. */
export interface Order extends Properties {
  order_id?: string; total?: number; revenue?: number; currency?: string; products?: Product[];
}

/** The tracker's API, the same as `window.cdp` of the script tag. */
export interface Cdp {
  page(name?: string, properties?: Properties): void;
  page(properties: Properties): void;
  /** Records `event` (a name: without one, it warns and records nothing). */
  track(event: string, properties?: Properties): void;
  identify(userId?: string, traits?: Properties): void;
  identify(traits: Properties): void;
  alias(userId: string, previousId?: string): void;
  group(groupId: string, traits?: Properties): void;
  /** Logout: a new anonymous id, no user id, no traits. */
  reset(): void;
  /** Consent choices by category, e.g. `{ analytics: true, marketing: false }`. */
  consent(preferences: Record<string, boolean>): void;
  /** Stores and sends what is queued now. */
  flush(): Promise<void>;
  anonymousId(): string;
  userId(): string | undefined;
  /**
   * The visitor's own audiences that are marked for personalization, by
   * `GET /v1/personalize`; rejects with the HTTP status when the collector refuses (an
   * unknown write key, an origin the source does not allow).
   */
  audiences(): Promise<Audiences>;
  ready(callback: (cdp: Cdp) => void): void;
  productViewed(product: Product): void;
  productAdded(product: Product): void;
  productRemoved(product: Product): void;
  cartViewed(cart: Order): void;
  checkoutStarted(order: Order): void;
  orderCompleted(order: Order): void;
}

/** The e-commerce helpers' event names. */
export declare const ECOMMERCE: Readonly<Record<string, string>>;

/**
 * Loads the Wasm tracker and starts it; nothing happens on import. Rejects, naming the URL,
 * when the Wasm cannot be fetched or compiled (a bundler that did not emit it, a CSP
 * without `'wasm-unsafe-eval'`).
 */
export declare function load(config: TrackerConfig): Promise<Cdp>;
