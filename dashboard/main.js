// The marketers' dashboard: Preact with htm, bundled by esbuild into www/dashboard/app.js.
// It calls only the documented API with the admin token kept in sessionStorage (never in a
// URL). Everything that comes from events or traits is rendered as text: Preact escapes
// it, and nothing here sets HTML.
import { h, render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './app.css';

const html = htm.bind(h);
const TOKEN = 'cdp_dashboard_token';

/** Why a call failed, in words a person can act on. */
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = 'GET', body } = {}) {
  let res;
  try {
    res = await fetch(path, { method, headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN)}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'The API is unreachable. Check that the Worker is running, then retry.');
  }
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN);
    window.dispatchEvent(new Event('cdp-signed-out'));
    throw new ApiError(401, 'The token was refused. Sign in again.');
  }
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json() : await res.blob();
  if (!res.ok) throw new ApiError(res.status, data?.error?.message || `The API answered ${res.status}.`);
  return data;
}

/** Loads `path` (again whenever `deps` change); { data, error, reload }. */
function useApi(path, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ data: s.data, error: null }));
    api(path).then((data) => live && setState({ data, error: null }), (error) => live && setState({ data: null, error }));
    return () => { live = false; };
  }, [path, tick, ...deps]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

const text = (v) => (v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');

function Problem({ error }) {
  return error ? html`<p class="problem" role="alert">${error.message}</p>` : null;
}

function Loading({ state, children }) {
  if (state.error) return html`<${Problem} error=${state.error} />`;
  if (!state.data) return html`<p class="muted">Loading…</p>`;
  return children(state.data);
}

function Table({ columns, rows, empty }) {
  if (!rows.length) return html`<p class="muted">${empty}</p>`;
  return html`<div class="scroll"><table>
    <thead><tr>${columns.map((c) => html`<th scope="col">${c.label}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr>${columns.map((c) => html`<td>${c.cell ? c.cell(r) : text(r[c.key])}</td>`)}</tr>`)}</tbody>
  </table></div>`;
}

function SignIn({ onDone }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN, token);
    try {
      await api('/v1/stats');
      onDone();
    } catch (err) {
      sessionStorage.removeItem(TOKEN);
      setError(err);
    }
  };
  return html`<main class="signin"><form onSubmit=${submit}>
    <h1>edge-cdp</h1>
    <label for="token">Admin token</label>
    <input id="token" type="password" autocomplete="current-password" value=${token} onInput=${(e) => setToken(e.target.value)} required />
    <button type="submit">Sign in</button>
    <${Problem} error=${error} />
    <p class="muted">The token is kept for this tab only (sessionStorage).</p>
  </form></main>`;
}

const COUNTERS = [
  ['accepted', 'Accepted'], ['delivered', 'Delivered'], ['duplicates', 'Duplicates'], ['pending', 'In the queue'],
  ['consent_dropped', 'Consent drops'], ['bots', 'Bots'], ['dead_lettered', 'Dead-lettered'], ['merges', 'Merges'],
  ['membership_changes', 'Audience changes'], ['deliveries_sent', 'Webhooks delivered'], ['deliveries_retried', 'Webhook retries'],
];

const COLORS = ['#2456c8', '#c8553d', '#2a9d8f', '#8e5ccf', '#d4a017', '#5b6475', '#b3261e'];
const RANGES = [['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['custom', 'Custom']];
const day = (ms) => new Date(ms).toISOString().slice(0, 10);

/** The range picker: a preset, or custom dates; calls `onChange` with the query string. */
function RangePicker({ onChange }) {
  const [preset, setPreset] = useState('7d');
  const [from, setFrom] = useState(day(Date.now() - 7 * 86_400_000));
  const [to, setTo] = useState(day(Date.now() + 86_400_000));
  useEffect(() => {
    onChange(preset === 'custom' ? `from=${from}&to=${to}` : `range=${preset}`);
  }, [preset, from, to]);
  return html`<div class="range" role="group" aria-label="Time range">
    <label>Range <select value=${preset} onChange=${(e) => setPreset(e.target.value)}>
      ${RANGES.map(([v, label]) => html`<option value=${v}>${label}</option>`)}</select></label>
    ${preset === 'custom' && html`<label>From <input type="date" value=${from} onChange=${(e) => setFrom(e.target.value)} /></label>
      <label>To (excluded) <input type="date" value=${to} onChange=${(e) => setTo(e.target.value)} /></label>`}
  </div>`;
}

/** A time-series chart drawn by uPlot; `series` is [{ label, values }], labels from our own
 * names (never from events). A table of the same numbers follows for screen readers. */
function Chart({ title, buckets, series, grain, span, format = (v) => text(v) }) {
  const box = useRef(null);
  const data = useMemo(() => [buckets.map((b) => Date.parse(b) / 1000), ...series.map((s) => s.values)], [buckets, series]);
  useEffect(() => {
    if (!box.current) return undefined;
    const size = () => ({ width: Math.max(240, box.current.clientWidth), height: 220 });
    const plot = new uPlot({
      ...size(),
      series: [{ value: (_, t) => (t == null ? '' : grain === 'hour' ? new Date(t * 1000).toLocaleString() : day(t * 1000)) },
        ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, scale: s.scale || 'y', value: (_, v) => (v == null ? '' : format(v)) }))],
      // A series on a scale of its own (an average beside a count) gets a right-hand axis.
      axes: [{}, { size: 60 }, ...series.filter((s) => s.scale).map((s) => ({ scale: s.scale, side: 1, size: 60, grid: { show: false } }))],
      // The x axis covers the range asked for (`span`, ISO times), not just the points there
      // are: one point alone would otherwise stretch it over years.
      scales: { x: span ? { time: true, range: span.map((t) => Date.parse(t) / 1000) } : { time: true } },
    }, data, box.current);
    const resize = new ResizeObserver(() => plot.setSize(size()));
    resize.observe(box.current);
    return () => { resize.disconnect(); plot.destroy(); };
  }, [data]);
  const described = series.map((s) => `${s.label}: ${format(s.values.reduce((a, v) => a + (v ?? 0), 0))}`).join(', ');
  return html`<figure class="chart"><figcaption>${title}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title}. Totals: ${described}`}></div></figure>`;
}

/** `{ name: {total, series} }` as chart series. */
const seriesOf = (byName, labels = {}) => Object.entries(byName || {}).map(([k, v]) => ({ label: labels[k] || k, values: v.series }));

const PIPELINE = [['accepted', 'Accepted'], ['delivered', 'Delivered'], ['rejected', 'Rejected'], ['duplicates', 'Duplicates'],
  ['consentDropped', 'Consent drops'], ['bots', 'Bots'], ['deadLettered', 'Dead-lettered'], ['merges', 'Merges']];

function Overview() {
  const [range, setRange] = useState('range=7d');
  const report = useApi(`/v1/reports/overview?${range}`);
  const stats = useApi('/v1/stats');
  return html`<section><h2>Overview</h2>
    <${RangePicker} onChange=${setRange} />
    <${Loading} state=${report}>${(r) => html`
      <div class="cards">
        <div class="card" data-report="events"><span class="label">Events stored</span><span class="value">${r.events.total.toLocaleString()}</span></div>
        <div class="card" data-report="profiles"><span class="label">Profiles created</span><span class="value">${r.profilesCreated.total.toLocaleString()}</span></div>
        <div class="card" data-report="visits"><span class="label">Visits</span><span class="value">${r.visits.total.toLocaleString()}</span></div>
        ${PIPELINE.map(([key, label]) => html`<div class="card" data-report=${key}><span class="label">${label}</span><span class="value">${r.pipeline[key].total.toLocaleString()}</span></div>`)}
        <div class="card" data-report="deadLetters"><span class="label">In the dead-letter store</span><span class="value">${r.deadLetters.toLocaleString()}</span></div>
      </div>
      ${r.events.total === 0 && html`<p class="muted">No event in this range yet. Send one from the demo shop, or pick a longer range.</p>`}
      <div class="charts">
        <${Chart} title="Events by type" buckets=${r.range.buckets} grain=${r.range.grain} series=${seriesOf(r.events.byType)} />
        <${Chart} title="Events by source" buckets=${r.range.buckets} grain=${r.range.grain} series=${seriesOf(r.events.bySource)} />
        <${Chart} title="Pipeline health" buckets=${r.range.buckets} grain=${r.range.grain}
          series=${PIPELINE.slice(0, 5).map(([k, label]) => ({ label, values: r.pipeline[k].series }))} />
        <${Chart} title="Profiles created and visits" buckets=${r.range.buckets} grain=${r.range.grain}
          series=${[{ label: 'Profiles created', values: r.profilesCreated.series }, { label: 'Visits', values: r.visits.series }]} />
      </div>
      <h3>Rejected, by reason</h3>
      <${Table} columns=${[{ label: 'Reason', key: 0 }, { label: 'Events', key: 1 }]} rows=${Object.entries(r.pipeline.rejected.byReason)}
        empty="Nothing rejected in this range." />`}<//>
    <h3>Since the start</h3>
    <${Loading} state=${stats}>${(s) => html`<div class="cards">${COUNTERS.map(([key, label]) => html`<div class="card" data-counter=${key}>
        <span class="label">${label}</span><span class="value">${(s[key] ?? 0).toLocaleString()}</span></div>`)}</div>`}<//>
  </section>`;
}

const percent = (v) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)} %`);
const DEFAULT_STEPS = ['Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed'];

/** The event names seen in the last 30 days with their property keys (the event schema). */
const useSchema = () => useApi('/v1/reports/events?range=30d').data?.events || [];

/** The event names seen, for pickers (`<datalist id="event-names">`). */
function EventNames() {
  const events = useSchema();
  return html`<datalist id="event-names">${events.map((e) => html`<option value=${e.name} />`)}</datalist>`;
}

function Funnel({ range }) {
  const [steps, setSteps] = useState(DEFAULT_STEPS);
  const [windowText, setWindow] = useState('7d');
  const [asked, setAsked] = useState({ steps: DEFAULT_STEPS, window: '7d' });
  const query = `${range}&window=${encodeURIComponent(asked.window)}${asked.steps.map((s) => `&step=${encodeURIComponent(s)}`).join('')}`;
  const funnel = useApi(`/v1/reports/funnel?${query}`);
  const submit = (e) => { e.preventDefault(); setAsked({ steps: steps.filter((s) => s.trim()), window: windowText }); };
  return html`<section aria-labelledby="funnel"><h3 id="funnel">Funnel</h3>
    <form class="funnel-form" onSubmit=${submit}>
      ${steps.map((step, i) => html`<label>Step ${i + 1} <input list="event-names" value=${step}
          onInput=${(e) => setSteps(steps.map((s, j) => (j === i ? e.target.value : s)))} /></label>
        ${steps.length > 2 && html`<button type="button" aria-label=${`Remove step ${i + 1}`} onClick=${() => setSteps(steps.filter((_, j) => j !== i))}>×</button>`}`)}
      <button type="button" onClick=${() => setSteps([...steps, ''])}>Add a step</button>
      <label>Within <input value=${windowText} size="5" onInput=${(e) => setWindow(e.target.value)} /></label>
      <button type="submit">Show funnel</button>
    </form>
    <${Loading} state=${funnel}>${(f) => html`<${Table} empty="No step." rows=${f.steps} columns=${[
      { label: 'Step', key: 'name' }, { label: 'People', cell: (s) => s.count.toLocaleString() },
      { label: 'From the step before', cell: (s) => percent(s.fromPrevious) },
      { label: 'From the first', cell: (s) => html`<meter min="0" max="1" value=${s.fromFirst ?? 0} aria-label=${`${s.name}: ${percent(s.fromFirst)} of the first step`}></meter> ${percent(s.fromFirst)}` }]} />`}<//>
  </section>`;
}

function Reports() {
  const [range, setRange] = useState('range=7d');
  const revenue = useApi(`/v1/reports/revenue?${range}`);
  const carts = useApi(`/v1/reports/carts?${range}`);
  const campaigns = useApi(`/v1/reports/campaigns?${range}`);
  const products = useApi(`/v1/reports/products?${range}&limit=10`);
  const money = (currency) => (v) => (v == null ? '' : Number(v).toLocaleString(undefined, { style: 'currency', currency }));
  return html`<section><h2>Reports</h2>
    <${RangePicker} onChange=${setRange} />
    <${EventNames} />
    <${Funnel} range=${range} />
    <h3>Revenue</h3>
    <${Loading} state=${revenue}>${(r) => html`<div class="cards">
        <div class="card" data-report="revenue"><span class="label">Revenue</span><span class="value">${money(r.currency)(r.revenue.total)}</span></div>
        <div class="card" data-report="orders"><span class="label">Orders</span><span class="value">${r.orders.total.toLocaleString()}</span></div>
        <div class="card" data-report="aov"><span class="label">Average order value</span><span class="value">${r.averageOrderValue.total == null ? '–' : money(r.currency)(r.averageOrderValue.total)}</span></div>
      </div>
      ${Object.keys(r.unconverted).length > 0 && html`<p class="muted">Not counted, no exchange rate set (CURRENCY_RATES): ${Object.entries(r.unconverted).map(([c, v]) => `${v} ${c}`).join(', ')}</p>`}
      <div class="charts">
        <${Chart} title=${`Revenue (${r.currency})`} buckets=${r.range.buckets} grain=${r.range.grain} format=${money(r.currency)}
          series=${[{ label: 'Revenue', values: r.revenue.series }]} />
        <${Chart} title="Orders and average order value" buckets=${r.range.buckets} grain=${r.range.grain}
          series=${[{ label: 'Orders', values: r.orders.series }, { label: 'Average order value (right)', values: r.averageOrderValue.series, scale: 'money' }]} />
      </div>`}<//>
    <h3>Carts</h3>
    <${Loading} state=${carts}>${(c) => html`<div class="cards">
        <div class="card" data-report="cartsStarted"><span class="label">Carts started</span><span class="value">${c.started.total.toLocaleString()}</span></div>
        <div class="card" data-report="cartsOrdered"><span class="label">Ordered within ${c.abandonAfterMinutes} min</span><span class="value">${c.ordered.total.toLocaleString()}</span></div>
        <div class="card" data-report="cartsAbandoned"><span class="label">Abandoned</span><span class="value">${c.abandoned.total.toLocaleString()}</span></div>
        <div class="card" data-report="abandonmentRate"><span class="label">Abandonment rate</span><span class="value">${percent(c.abandonmentRate.total)}</span></div>
      </div>
      <div class="charts"><${Chart} title="Carts by the day they began" buckets=${c.range.buckets} grain=${c.range.grain}
        series=${[{ label: 'Started', values: c.started.series }, { label: 'Ordered', values: c.ordered.series }, { label: 'Abandoned', values: c.abandoned.series }]} /></div>`}<//>
    <h3>Campaigns</h3>
    <${Loading} state=${campaigns}>${(c) => html`<${Table} empty="No visit in this range." rows=${c.campaigns} columns=${[
      { label: 'Campaign', key: 'campaign' }, { label: 'Source', key: 'source' }, { label: 'Medium', key: 'medium' },
      { label: 'Visits', key: 'visits' }, { label: 'Orders', key: 'orders' }, { label: 'Revenue', key: 'revenue' }]} />
      <h3>Referrers</h3>
      <${Table} empty="No visit in this range." rows=${c.referrers} columns=${[
      { label: 'Referrer', key: 'referrer' }, { label: 'Visits', key: 'visits' }, { label: 'Orders', key: 'orders' }, { label: 'Revenue', key: 'revenue' }]} />`}<//>
    <h3>Top products</h3>
    <${Loading} state=${products}>${(p) => html`<${Table} empty="No product event in this range." rows=${p.products} columns=${[
      { label: 'Product', key: 'product' }, { label: 'Views', key: 'views' }, { label: 'Added', key: 'added' }, { label: 'Ordered', key: 'ordered' }]} />
      <h3>Top categories</h3>
      <${Table} empty="No category in this range." rows=${p.categories} columns=${[
      { label: 'Category', key: 'category' }, { label: 'Views', key: 'views' }, { label: 'Order lines', key: 'orders' }]} />`}<//>
  </section>`;
}

const SEARCH_HELP = 'Fields: traits.<key>, computed.<name>, identifiers.<kind>; operators = != > >= < <= ~ (contains).';

function Profiles({ go }) {
  const [conditions, setConditions] = useState(['']);
  const [query, setQuery] = useState('');
  const found = useApi(`/v1/profiles?limit=50${query}`, [query]);
  const search = (e) => {
    e.preventDefault();
    setQuery(conditions.filter((c) => c.trim()).map((c) => `&where=${encodeURIComponent(c.trim())}`).join(''));
  };
  return html`<section><h2>Profiles</h2>
    <form class="search" onSubmit=${search}>
      ${conditions.map((c, i) => html`<label>Condition ${i + 1}
        <input value=${c} placeholder="identifiers.email~@example.com" onInput=${(e) => setConditions(conditions.map((x, j) => (j === i ? e.target.value : x)))} /></label>`)}
      <button type="button" onClick=${() => setConditions([...conditions, ''])}>Add a condition</button>
      <button type="submit">Search</button>
      <p class="muted">${SEARCH_HELP}</p>
    </form>
    <${Loading} state=${found}>${(d) => html`<${Table} empty="No profile matches." rows=${d.profiles} columns=${[
      { label: 'Profile', cell: (p) => html`<a href=${`#/profiles/${p.id}`} onClick=${(e) => { e.preventDefault(); go(`/profiles/${p.id}`); }}>${p.id}</a>` },
      { label: 'Email', cell: (p) => text((p.identifiers?.email || []).join(', ')) },
      { label: 'Name', cell: (p) => text(p.traits?.name) },
      { label: 'Revenue', cell: (p) => text(p.computed?.totalRevenue) },
      { label: 'Last seen', cell: (p) => when(p.computed?.lastSeen) },
      { label: 'Audiences', cell: (p) => text((p.audiences || []).join(', ')) }]} />`}<//>
  </section>`;
}

function Timeline({ id }) {
  const [filter, setFilter] = useState({ type: '', name: '' });
  const [cursor, setCursor] = useState('');
  const q = `limit=20${filter.type ? `&type=${filter.type}` : ''}${filter.name ? `&name=${encodeURIComponent(filter.name)}` : ''}${cursor ? `&cursor=${cursor}` : ''}`;
  const page = useApi(`/v1/profiles/${id}/events?${q}`, [q]);
  return html`<div>
    <form class="inline" onSubmit=${(e) => e.preventDefault()}>
      <label>Type <select value=${filter.type} onChange=${(e) => { setCursor(''); setFilter({ ...filter, type: e.target.value }); }}>
        ${['', 'track', 'page', 'identify', 'screen', 'group', 'alias'].map((t) => html`<option value=${t}>${t || 'any'}</option>`)}</select></label>
      <label>Event name <input value=${filter.name} onChange=${(e) => { setCursor(''); setFilter({ ...filter, name: e.target.value }); }} /></label>
    </form>
    <${Loading} state=${page}>${(d) => html`<${Table} empty="No events." rows=${d.events} columns=${[
      { label: 'Time', cell: (e) => when(e.timestamp) },
      { label: 'Type', key: 'type' },
      { label: 'Event', cell: (e) => text(e.event ?? e.name ?? e.context?.page?.path) },
      { label: 'Properties', cell: (e) => html`<code>${text(e.properties ?? e.traits ?? {})}</code>` }]} />
      ${d.nextCursor && html`<button onClick=${() => setCursor(d.nextCursor)}>Older events</button>`}
      ${cursor && html`<button onClick=${() => setCursor('')}>Newest</button>`}`}<//>
  </div>`;
}

/** The explanation of one identifier: why it is in the profile. */
function why(explained, identifier) {
  const found = explained?.identifiers?.find((x) => x.type === identifier.type && x.value === identifier.value);
  if (!found) return '';
  return `${found.because ?? ''}${found.via ? ` (via ${found.via})` : ''}, since ${when(found.since)}`;
}

function Profile({ id, go }) {
  const profile = useApi(`/v1/profiles/${id}`);
  const explain = useApi(`/v1/profiles/${id}/explain`);
  const [message, setMessage] = useState(null);
  const erase = async () => {
    if (window.prompt(`Erase profile ${id} everywhere? This cannot be undone. Type ERASE to confirm.`) !== 'ERASE') return;
    try {
      await api(`/v1/profiles/${id}`, { method: 'DELETE' });
      go('/profiles');
    } catch (err) { setMessage(err); }
  };
  const exportIt = async () => {
    try {
      const data = await api(`/v1/profiles/${id}/export`);
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
      Object.assign(document.createElement('a'), { href: url, download: `${id}.json` }).click();
      URL.revokeObjectURL(url);
    } catch (err) { setMessage(err); }
  };
  const unmerge = async (type, value) => {
    if (!window.confirm(`Split ${type} ${value} off into a profile of its own?`)) return;
    try {
      const done = await api(`/v1/profiles/${id}/unmerge`, { method: 'POST', body: { type, value } });
      go(`/profiles/${done.detail.newProfile}`);
    } catch (err) { setMessage(err); }
  };
  return html`<section><${Loading} state=${profile}>${(p) => html`
    <h2>Profile <code>${p.id}</code></h2>
    <div class="actions"><button onClick=${exportIt}>Export (JSON)</button><button class="danger" onClick=${erase}>Erase…</button></div>
    <${Problem} error=${message} />
    <h3>Identifiers</h3>
    <${Table} empty="None." rows=${p.identifiers} columns=${[{ label: 'Type', key: 'type' }, { label: 'Value', key: 'value' },
      { label: 'Why it belongs', cell: (i) => text(why(explain.data, i)) },
      { label: '', cell: (i) => html`<button onClick=${() => unmerge(i.type, i.value)}>Unmerge</button>` }]} />
    <h3>Traits</h3>
    <${Table} empty="No traits." rows=${Object.entries(p.traits)} columns=${[{ label: 'Trait', key: 0 }, { label: 'Value', cell: (t) => text(t[1]) },
      { label: 'Source', cell: (t) => text(p.traitSources?.[t[0]]?.source) }]} />
    <h3>Computed traits</h3>
    <${Table} empty="None." rows=${Object.entries(p.computedTraits)} columns=${[{ label: 'Trait', key: 0 }, { label: 'Value', cell: (t) => text(t[1]) }]} />
    <h3>Audiences</h3>
    <${Table} empty="In no audience." rows=${p.audiences || []} columns=${[{ label: 'Audience', key: 'key' }, { label: 'Since', cell: (a) => when(a.since) }]} />
    <h3>Timeline</h3><${Timeline} id=${p.id} />`}<//></section>`;
}

const KINDS = { did: 'did', didNot: 'did not', have: 'have' };
const blankRow = () => ({ kind: 'did', event: '', within: '30d', atLeast: '1', where: '', have: 'computed.totalRevenue>0' });

/** A builder row as the definition format has it. */
function condition(row) {
  if (row.kind === 'have') return { have: row.have };
  const inner = { event: row.event };
  if (row.within) inner.within = row.within;
  if (row.where.trim()) inner.where = [row.where.trim()];
  if (row.kind === 'did' && row.atLeast && row.atLeast !== '1') inner.atLeast = Number(row.atLeast);
  return { [row.kind]: inner };
}

function Builder({ onSaved }) {
  const schema = useSchema();
  const [meta, setMeta] = useState({ key: '', name: '', group: '', personalize: false, join: 'all' });
  const [rows, setRows] = useState([blankRow()]);
  const [estimate, setEstimate] = useState(null);
  const [problem, setProblem] = useState(null);
  const definition = useMemo(() => ({ where: { [meta.join]: rows.map(condition) } }), [meta.join, rows]);
  useEffect(() => {
    if (rows.some((r) => r.kind !== 'have' && !r.event)) { setEstimate(null); return undefined; }
    const timer = setTimeout(() => {
      api('/v1/audiences/preview', { method: 'POST', body: definition })
        .then((d) => { setEstimate(d); setProblem(null); }, (err) => { setEstimate(null); setProblem(err); });
    }, 400);
    return () => clearTimeout(timer);
  }, [JSON.stringify(definition)]);
  const set = (i, patch) => setRows(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const save = async (e) => {
    e.preventDefault();
    try {
      await api('/v1/audiences', { method: 'POST', body: { key: meta.key, name: meta.name || meta.key,
        ...(meta.group ? { group: meta.group } : {}), personalize: meta.personalize, ...definition } });
      onSaved();
    } catch (err) { setProblem(err); }
  };
  return html`<form class="builder" onSubmit=${save}>
    <h3>New audience</h3>
    <${EventNames} />
    <div class="grid">
      <label>Key <input value=${meta.key} required pattern="[a-z0-9_]{1,64}" onInput=${(e) => setMeta({ ...meta, key: e.target.value })} /></label>
      <label>Name <input value=${meta.name} onInput=${(e) => setMeta({ ...meta, name: e.target.value })} /></label>
      <label>Segment group <input value=${meta.group} onInput=${(e) => setMeta({ ...meta, group: e.target.value })} /></label>
      <label class="check"><input type="checkbox" checked=${meta.personalize} onChange=${(e) => setMeta({ ...meta, personalize: e.target.checked })} /> For personalization</label>
    </div>
    <label>People who match <select value=${meta.join} onChange=${(e) => setMeta({ ...meta, join: e.target.value })}>
      <option value="all">all of</option><option value="any">any of</option></select></label>
    ${rows.map((r, i) => html`<fieldset class="row"><legend>Condition ${i + 1}</legend>
      <label>Kind <select value=${r.kind} onChange=${(e) => set(i, { kind: e.target.value })}>
        ${Object.entries(KINDS).map(([k, label]) => html`<option value=${k}>${label}</option>`)}</select></label>
      ${r.kind === 'have'
        ? html`<label>Condition <input value=${r.have} onInput=${(e) => set(i, { have: e.target.value })} /></label>`
        : html`<label>Event <input list="event-names" value=${r.event} placeholder="Order Completed" onInput=${(e) => set(i, { event: e.target.value })} /></label>
          <label>Within <input value=${r.within} size="5" placeholder="30d" onInput=${(e) => set(i, { within: e.target.value })} /></label>
          <label>Where <input list=${`properties-${i}`} value=${r.where} placeholder="properties.total>100" onInput=${(e) => set(i, { where: e.target.value })} /></label>
          <datalist id=${`properties-${i}`}>${(schema.find((e) => e.name === r.event)?.properties || []).map((k) => html`<option value=${`properties.${k}`} />`)}</datalist>
          ${r.kind === 'did' && html`<label>At least <input type="number" min="1" value=${r.atLeast} onInput=${(e) => set(i, { atLeast: e.target.value })} /></label>`}`}
      ${rows.length > 1 && html`<button type="button" onClick=${() => setRows(rows.filter((_, j) => j !== i))}>Remove</button>`}
    </fieldset>`)}
    <button type="button" onClick=${() => setRows([...rows, blankRow()])}>Add a condition</button>
    <p class="estimate" aria-live="polite">${estimate ? `About ${estimate.size.toLocaleString()} ${estimate.size === 1 ? 'person' : 'people'}${estimate.estimated ? ' (estimated)' : ''}, of ${estimate.profiles.toLocaleString()} profiles` : 'Size: fill in the conditions'}</p>
    <${Problem} error=${problem} />
    <button type="submit">Save audience</button>
  </form>`;
}

function Audiences({ go }) {
  const list = useApi('/v1/audiences');
  return html`<section><h2>Audiences</h2><${Loading} state=${list}>${(d) => html`
    <${Table} empty="No audience yet: build one below." rows=${d.audiences} columns=${[
      { label: 'Audience', cell: (a) => html`<a href=${`#/audiences/${a.key}`} onClick=${(e) => { e.preventDefault(); go(`/audiences/${a.key}`); }}>${a.name}</a>` },
      { label: 'Key', key: 'key' }, { label: 'Group', key: 'group' }, { label: 'State', key: 'state' },
      { label: 'Size', cell: (a) => (a.size ?? 0).toLocaleString() }]} />`}<//>
    <${Builder} onSaved=${list.reload} /></section>`;
}

function Audience({ id }) {
  const audience = useApi(`/v1/audiences/${id}`);
  const sizes = useApi(`/v1/audiences/${id}/sizes?range=30d`);
  const members = useApi(`/v1/audiences/${id}/members?limit=50`);
  return html`<section><${Loading} state=${audience}>${(a) => html`<h2>${a.name}</h2>
    <p>${a.state}, ${(a.size ?? 0).toLocaleString()} members${a.group ? `, group ${a.group}` : ''}</p>
    <pre>${JSON.stringify(a.where, null, 2)}</pre>`}<//>
    <h3>Size over time</h3>
    <${Loading} state=${sizes}>${(s) => (s.points.length
    ? html`<${Chart} title="Members, recorded each hour" grain="hour" span=${[s.from, s.to]} buckets=${s.points.map((p) => p.at)} series=${[{ label: 'Members', values: s.points.map((p) => p.size) }]} />`
    : html`<p class="muted">No size recorded yet: the Cron Trigger records every audience's size once an hour (now ${s.size.toLocaleString()}).</p>`)}<//>
    <h3>Members</h3><${Loading} state=${members}>${(m) => html`<${Table} empty="No members." rows=${m.profiles} columns=${[
      { label: 'Profile', cell: (p) => html`<a href=${`#/profiles/${p.id}`}>${p.id}</a>` },
      { label: 'Email', cell: (p) => text((p.identifiers?.email || []).join(', ')) }]} />`}<//></section>`;
}

const csv = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);

/** A form that saves a JSON definition to `path`; `build` turns the fields into it. */
function DefinitionForm({ title, path, fields, build, onSaved, note }) {
  const [values, setValues] = useState(Object.fromEntries(fields.map((f) => [f.name, f.initial ?? ''])));
  const [problem, setProblem] = useState(null);
  const [saved, setSaved] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      const answer = await api(path, { method: 'POST', body: build(values) });
      setProblem(null);
      setSaved(note ? note(answer) : 'Saved.');
      onSaved();
    } catch (err) { setSaved(null); setProblem(err); }
  };
  return html`<form class="builder" onSubmit=${submit}><h3>${title}</h3><div class="grid">
    ${fields.map((f) => html`<label>${f.label} ${f.options
      ? html`<select value=${values[f.name]} onChange=${(e) => setValues({ ...values, [f.name]: e.target.value })}>${f.options.map((o) => html`<option value=${o}>${o}</option>`)}</select>`
      : html`<input value=${values[f.name]} required=${Boolean(f.required)} placeholder=${f.placeholder || ''} onInput=${(e) => setValues({ ...values, [f.name]: e.target.value })} />`}</label>`)}
    </div><${Problem} error=${problem} />${saved && html`<p role="status">${saved}</p>`}<button type="submit">Save</button></form>`;
}

const DESTINATION_FIELDS = [
  { name: 'key', label: 'Key', required: true, placeholder: 'crm' },
  { name: 'type', label: 'Type', options: ['webhook', 'segment'], initial: 'webhook' },
  { name: 'url', label: 'URL (webhook) or endpoint (segment)', required: true, placeholder: 'https://hooks.example.com/cdp' },
  { name: 'writeKey', label: 'Write key (segment)' },
  { name: 'audiences', label: 'Audiences (comma-separated)' },
  { name: 'groups', label: 'Segment groups (comma-separated)' },
  { name: 'fields', label: 'Fields (comma-separated)', initial: 'identifiers.email' },
  { name: 'consent', label: 'Consent category (optional)' },
];
const destination = (v) => ({ key: v.key, type: v.type, audiences: csv(v.audiences), groups: csv(v.groups), fields: csv(v.fields),
  ...(v.consent ? { consent: v.consent } : {}),
  settings: v.type === 'webhook' ? { url: v.url } : { endpoint: v.url, writeKey: v.writeKey } });

function Destinations() {
  const list = useApi('/v1/destinations');
  const [open, setOpen] = useState(null);
  const [problem, setProblem] = useState(null);
  const [replayed, setReplayed] = useState(null);
  const replay = async (key) => {
    try {
      const answer = await api(`/v1/destinations/${key}/replay`, { method: 'POST' });
      setProblem(null);
      setReplayed(`${key}: ${answer.replayed ?? 0} dead deliveries sent again.`);
    } catch (err) { setProblem(err); }
  };
  const log = useApi(open ? `/v1/destinations/${open}/deliveries?limit=50` : '/v1/destinations', [open]);
  return html`<section><h2>Destinations</h2><${Loading} state=${list}>${(d) => html`<${Table} empty="No destination." rows=${d.destinations} columns=${[
    { label: 'Destination', key: 'key' }, { label: 'Type', key: 'type' }, { label: 'State', cell: (x) => text(x.state + (x.disabledReason ? `: ${x.disabledReason}` : '')) },
    { label: 'Audiences', cell: (x) => text([...(x.audiences || []), ...(x.groups || []).map((g) => `group ${g}`)].join(', ')) },
    { label: '', cell: (x) => html`<button onClick=${() => setOpen(x.key)}>Delivery log</button>
      <button onClick=${() => replay(x.key)}>Replay dead deliveries</button>` }]} />`}<//>
    <${Problem} error=${problem} />${replayed && html`<p role="status">${replayed}</p>`}
    ${open && html`<h3>Deliveries to ${open}</h3><${Loading} state=${log}>${(l) => html`<${Table} empty="Nothing delivered yet." rows=${l.deliveries || []} columns=${[
      { label: 'When', cell: (x) => when(x.at) }, { label: 'Change', cell: (x) => text(`${x.change} ${x.audience} #${x.sequence}`) },
      { label: 'Try', key: 'attempt' }, { label: 'Status', key: 'status' }, { label: 'Outcome', key: 'outcome' },
      { label: 'Latency', cell: (x) => `${x.latencyMs} ms` }, { label: 'Next try', cell: (x) => when(x.nextAt) }]} />`}<//>`}
    <${DefinitionForm} title="New destination" path="/v1/destinations" fields=${DESTINATION_FIELDS} build=${destination} onSaved=${list.reload}
      note=${(d) => (d.secretShownOnce ? `Saved. Its signing secret, shown this once: ${d.settings.secret}` : 'Saved.')} />
  </section>`;
}

const EXPORT_FIELDS = [
  { name: 'key', label: 'Key', required: true, placeholder: 'vip_weekly' },
  { name: 'audience', label: 'Audience (or a group below)' },
  { name: 'group', label: 'Segment group' },
  { name: 'format', label: 'Format', options: ['csv', 'ndjson'], initial: 'csv' },
  { name: 'fields', label: 'Fields (comma-separated)', initial: 'identifiers.email' },
  { name: 'schedule', label: 'Schedule (cron, UTC)', required: true, initial: '0 6 * * 1' },
  { name: 'consent', label: 'Consent category (optional)' },
];
const exportOf = (v) => ({ key: v.key, ...(v.audience ? { audience: v.audience } : { group: v.group }), format: v.format,
  fields: csv(v.fields), schedule: v.schedule, ...(v.consent ? { consent: v.consent } : {}) });

function Exports() {
  const list = useApi('/v1/exports');
  const [problem, setProblem] = useState(null);
  const download = async (key, run) => {
    try {
      const blob = await api(`/v1/exports/${key}/runs/${run}/file`);
      const url = URL.createObjectURL(blob);
      Object.assign(document.createElement('a'), { href: url, download: `${key}-${run}.gz` }).click();
      URL.revokeObjectURL(url);
    } catch (err) { setProblem(err); }
  };
  const runNow = async (key) => {
    try { await api(`/v1/exports/${key}/run`, { method: 'POST' }); list.reload(); } catch (err) { setProblem(err); }
  };
  return html`<section><h2>Exports</h2><${Problem} error=${problem} /><${Loading} state=${list}>${(d) => html`<${Table} empty="No export." rows=${d.exports} columns=${[
    { label: 'Export', key: 'key' }, { label: 'Of', cell: (x) => text(x.audience ?? `group ${x.group}`) }, { label: 'Schedule', key: 'schedule' },
    { label: 'Next run', cell: (x) => when(x.nextRunAt) },
    { label: 'Last run', cell: (x) => (x.lastRun ? text(`${x.lastRun.state}, ${x.lastRun.rows} rows`) : 'never') },
    { label: '', cell: (x) => html`<button onClick=${() => runNow(x.key)}>Run now</button>
      ${x.lastRun?.state === 'done' && html`<button onClick=${() => download(x.key, x.lastRun.run)}>Download</button>`}` }]} />`}<//>
    <${DefinitionForm} title="New export" path="/v1/exports" fields=${EXPORT_FIELDS} build=${exportOf} onSaved=${list.reload} /></section>`;
}

const PAGES = [['/', 'Overview'], ['/reports', 'Reports'], ['/profiles', 'Profiles'], ['/audiences', 'Audiences'], ['/destinations', 'Destinations'], ['/exports', 'Exports']];

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(sessionStorage.getItem(TOKEN)));
  const [route, setRoute] = useState(location.hash.slice(1) || '/');
  useEffect(() => {
    const onHash = () => setRoute(location.hash.slice(1) || '/');
    const out = () => setSignedIn(false);
    window.addEventListener('hashchange', onHash);
    window.addEventListener('cdp-signed-out', out);
    return () => { window.removeEventListener('hashchange', onHash); window.removeEventListener('cdp-signed-out', out); };
  }, []);
  const go = (to) => { location.hash = to; };
  if (!signedIn) return html`<${SignIn} onDone=${() => setSignedIn(true)} />`;
  const [, section, id] = route.split('/');
  const page = section === 'profiles' && id ? html`<${Profile} id=${decodeURIComponent(id)} go=${go} />`
    : section === 'profiles' ? html`<${Profiles} go=${go} />`
      : section === 'audiences' && id ? html`<${Audience} id=${decodeURIComponent(id)} />`
        : section === 'audiences' ? html`<${Audiences} go=${go} />`
          : section === 'reports' ? html`<${Reports} />`
            : section === 'destinations' ? html`<${Destinations} />`
            : section === 'exports' ? html`<${Exports} />` : html`<${Overview} />`;
  return html`<header><strong>edge-cdp</strong><nav aria-label="Sections">${PAGES.map(([to, label]) => html`<a href=${`#${to}`}
      aria-current=${(`/${section || ''}` === to) ? 'page' : undefined}>${label}</a>`)}</nav>
    <button onClick=${() => { sessionStorage.removeItem(TOKEN); setSignedIn(false); }}>Sign out</button></header>
    <main>${page}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
