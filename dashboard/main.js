// The marketers' dashboard: Preact with htm, bundled by esbuild into www/dashboard/app.js.
// It calls only the documented API with the admin token kept in sessionStorage (never in a
// URL). Everything that comes from events or traits is rendered as text: Preact escapes
// it, and nothing here sets HTML.
import { h, render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import htm from 'htm';

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

function Overview() {
  const stats = useApi('/v1/stats');
  return html`<section><h2>Overview</h2><${Loading} state=${stats}>${(s) => {
    const rejected = Object.entries(s).filter(([k]) => k.startsWith('rejected.'));
    return html`<div class="cards">${COUNTERS.map(([key, label]) => html`<div class="card" data-counter=${key}>
        <span class="label">${label}</span><span class="value">${(s[key] ?? 0).toLocaleString()}</span></div>`)}</div>
      <h3>Rejected, by reason</h3>
      <${Table} columns=${[{ label: 'Reason', key: 0 }, { label: 'Events', key: 1 }]} rows=${rejected.map(([k, v]) => [k.slice(9), v])}
        empty="Nothing rejected." />`;
  }}<//></section>`;
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
const blankRow = () => ({ kind: 'did', event: '', within: '30d', atLeast: '1', have: 'computed.totalRevenue>0' });

/** A builder row as the definition format has it. */
function condition(row) {
  if (row.kind === 'have') return { have: row.have };
  const inner = { event: row.event };
  if (row.within) inner.within = row.within;
  if (row.kind === 'did' && row.atLeast && row.atLeast !== '1') inner.atLeast = Number(row.atLeast);
  return { [row.kind]: inner };
}

function Builder({ onSaved }) {
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
        : html`<label>Event <input value=${r.event} placeholder="Order Completed" onInput=${(e) => set(i, { event: e.target.value })} /></label>
          <label>Within <input value=${r.within} size="5" placeholder="30d" onInput=${(e) => set(i, { within: e.target.value })} /></label>
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
  const members = useApi(`/v1/audiences/${id}/members?limit=50`);
  return html`<section><${Loading} state=${audience}>${(a) => html`<h2>${a.name}</h2>
    <p>${a.state}, ${(a.size ?? 0).toLocaleString()} members${a.group ? `, group ${a.group}` : ''}</p>
    <pre>${JSON.stringify(a.where, null, 2)}</pre>`}<//>
    <h3>Members</h3><${Loading} state=${members}>${(m) => html`<${Table} empty="No members." rows=${m.profiles} columns=${[
      { label: 'Profile', cell: (p) => html`<a href=${`#/profiles/${p.id}`}>${p.id}</a>` },
      { label: 'Email', cell: (p) => text((p.identifiers?.email || []).join(', ')) }]} />`}<//></section>`;
}

function Destinations() {
  const list = useApi('/v1/destinations');
  const [open, setOpen] = useState(null);
  const log = useApi(open ? `/v1/destinations/${open}/deliveries?limit=50` : '/v1/destinations', [open]);
  return html`<section><h2>Destinations</h2><${Loading} state=${list}>${(d) => html`<${Table} empty="No destination." rows=${d.destinations} columns=${[
    { label: 'Destination', key: 'key' }, { label: 'Type', key: 'type' }, { label: 'State', cell: (x) => text(x.state + (x.disabledReason ? `: ${x.disabledReason}` : '')) },
    { label: 'Audiences', cell: (x) => text([...(x.audiences || []), ...(x.groups || []).map((g) => `group ${g}`)].join(', ')) },
    { label: '', cell: (x) => html`<button onClick=${() => setOpen(x.key)}>Delivery log</button>` }]} />`}<//>
    ${open && html`<h3>Deliveries to ${open}</h3><${Loading} state=${log}>${(l) => html`<${Table} empty="Nothing delivered yet." rows=${l.deliveries || []} columns=${[
      { label: 'When', cell: (x) => when(x.at) }, { label: 'Change', cell: (x) => text(`${x.change} ${x.audience} #${x.sequence}`) },
      { label: 'Try', key: 'attempt' }, { label: 'Status', key: 'status' }, { label: 'Outcome', key: 'outcome' },
      { label: 'Latency', cell: (x) => `${x.latencyMs} ms` }, { label: 'Next try', cell: (x) => when(x.nextAt) }]} />`}<//>`}
  </section>`;
}

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
      ${x.lastRun?.state === 'done' && html`<button onClick=${() => download(x.key, x.lastRun.run)}>Download</button>`}` }]} />`}<//></section>`;
}

const PAGES = [['/', 'Overview'], ['/profiles', 'Profiles'], ['/audiences', 'Audiences'], ['/destinations', 'Destinations'], ['/exports', 'Exports']];

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
          : section === 'destinations' ? html`<${Destinations} />`
            : section === 'exports' ? html`<${Exports} />` : html`<${Overview} />`;
  return html`<header><strong>edge-cdp</strong><nav aria-label="Sections">${PAGES.map(([to, label]) => html`<a href=${`#${to}`}
      aria-current=${(`/${section || ''}` === to) ? 'page' : undefined}>${label}</a>`)}</nav>
    <button onClick=${() => { sessionStorage.removeItem(TOKEN); setSignedIn(false); }}>Sign out</button></header>
    <main>${page}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
