//! From a call to the collector: capture, the durable queue, batching, retries, and the
//! last send when the page is hidden. The decisions come from the pure modules; this
//! module does the I/O in the right order.
//!
//! The browser reports everything (page hidden, back online, route changed, marked element
//! clicked, timer or idle time due, send lock taken, collector answered) through one
//! callback, `wake(signal, x, y, value)`, which [`Signal`] names: one closure for the life
//! of the page instead of one per timer and request, which keeps the page's Wasm small.
//!
//! Promise kept: an event is in browser storage before the first attempt to send it, and
//! leaves storage only when the collector has answered for it (2xx, or a 4xx that no
//! retry can fix). Sends from several tabs are serialised by a Web Lock.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use crate::backoff::{self, Outcome};
use crate::config::Config;
use crate::consent::{self, Decision};
use crate::event::Captured;
use crate::identity::Identity;
use crate::outbox;
use crate::session::Session;
use crate::{capture, context, event, js, lifecycle, navigation, route, storage, transport};

/// localStorage key of the visitor's consent choices (JSON).
pub const CONSENT: &str = "cdp_consent";
/// localStorage key of the session (`[id, last]`).
pub const SESSION: &str = "cdp_sid";
/// localStorage key of the count of events dropped and not yet reported.
pub const DROPPED: &str = "cdp_drop";
/// What every localStorage key of the tracker (and of the loader) starts with.
pub const STORAGE_PREFIX: &str = "cdp_";
/// Name of the Web Lock that one tab at a time holds while sending the queue.
const SEND_LOCK: &str = "cdp-send";
/// Most events stored in one idle slice: more would risk a long task (> 50 ms).
const STORE_SLICE: usize = 100;
/// Without Web Locks a tab sends only its own events, and those of tabs gone this long.
const ORPHAN_AFTER_MS: f64 = 60_000.0;
/// What all in-flight keepalive requests may carry together (the browser's 64 KB, less margin).
const KEEPALIVE_BUDGET: usize = 63 * 1024;
/// How long other tabs leave alone entries a send under the lock is sending: longer than a
/// request may take (it gives up after 60 s); the answer ends it sooner.
const SENDING_MARK_MS: f64 = 90_000.0;
/// The same for a send as the page is hidden: its page may be gone before the answer, so if
/// that request failed, the next page sends these entries soon.
const HIDE_MARK_MS: f64 = 10_000.0;

/// What the browser reports through the tracker's one callback.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Signal {
    /// The page is hidden or being closed.
    Hidden,
    /// The browser is back online or the tracker starts (`x` is 0), or the page is shown
    /// again (`x` is 1).
    Online,
    /// The URL changed without a page load.
    Route,
    /// A marked element was clicked or submitted; `value` is `{event, properties}`.
    Marked,
    /// The main thread is idle: store what is pending.
    Idle,
    /// A scheduled flush is due.
    Timer,
    /// The send lock is ours (`x` is 1) or Web Locks are missing (`x` is 0).
    Locked,
    /// Another tab holds the send lock.
    Busy,
    /// The collector answered batch `x` with status `y` (0: no answer) and `value` the
    /// `Retry-After` in milliseconds, if any.
    Answer,
    /// Another tab stored consent choices; `value` is their JSON (`null` when removed).
    Consent,
}

const SIGNALS: [Signal; 10] = [
    Signal::Hidden,
    Signal::Online,
    Signal::Route,
    Signal::Marked,
    Signal::Idle,
    Signal::Timer,
    Signal::Locked,
    Signal::Busy,
    Signal::Answer,
    Signal::Consent,
];

/// The tracker's state, shared by the page's calls and the browser's callback.
pub type Shared = Rc<RefCell<State>>;

/// A batch on its way to the collector.
struct Flight {
    id: u32,
    /// Storage keys of its events (an array).
    keys: JsValue,
    bytes: usize,
    /// Dropped-event count the batch reported.
    reported: u32,
    /// Whether it was sent under the send lock, and its answer sends the next batch.
    chained: bool,
}

/// Everything the tracker keeps in memory.
pub struct State {
    /// Settings.
    pub config: Config,
    /// Who the visitor is.
    pub identity: Identity,
    identity_saved: bool,
    /// The callback the browser reports through.
    wake: JsValue,
    fixed_context: JsValue,
    consent: JsValue,
    decision: Decision,
    /// Captured, not yet in storage (stored at idle time or when the page hides).
    pending: Vec<Captured>,
    /// Captured while consent is pending: memory only.
    held: Vec<Captured>,
    store_scheduled: bool,
    flush_due: Option<f64>,
    sending: bool,
    /// Resolves when the send under way is over (what `flush()` returns meanwhile).
    send_over: JsValue,
    has_lock: bool,
    attempt: u32,
    retry_at: f64,
    flights: Vec<Flight>,
    next_flight: u32,
    last_page_url: String,
    tab: String,
    session: Option<Session>,
    seq: u64,
    /// Time to stamp calls with instead of now (calls replayed by the loader).
    pub call_time: Option<f64>,
    /// The page and message id of a call replayed by the loader from a page since closed.
    pub call_kept: JsValue,
}

impl State {
    fn new(config: Config) -> State {
        let consent = choices(js::parse(&storage::get(CONSENT)));
        let mut state = State {
            config,
            identity: Identity::load(),
            identity_saved: false,
            wake: JsValue::UNDEFINED,
            fixed_context: context::fixed(),
            consent,
            decision: Decision::Hold,
            pending: Vec::new(),
            held: Vec::new(),
            store_scheduled: false,
            flush_due: None,
            sending: false,
            send_over: JsValue::UNDEFINED,
            has_lock: false,
            attempt: 0,
            retry_at: 0.0,
            flights: Vec::new(),
            next_flight: 0,
            last_page_url: String::new(),
            tab: tab_id(),
            session: None,
            seq: 0,
            call_time: None,
            call_kept: JsValue::UNDEFINED,
        };
        state.decide();
        state
    }

    /// Applies the consent rules to the current choices and signals; on `Collect`, loads
    /// what an earlier page stored.
    fn decide(&mut self) {
        let choice = js::get(&self.consent, &self.config.consent.category).as_bool();
        self.decision = consent::decide(
            &self.config.consent,
            choice,
            context::global_privacy_control(),
            context::do_not_track(),
        );
        if self.decision != Decision::Collect {
            return;
        }
        let stored = js::parse(&storage::get(SESSION));
        self.session = match (
            js::get(&stored, "0").as_f64(),
            js::get(&stored, "1").as_f64(),
        ) {
            (Some(id), Some(last)) => Some(Session { id, last }),
            _ => None,
        };
        if !self.identity_saved {
            // Another tab of the site may have stored the visitor since this page began (it
            // got consent first): one visitor, one anonymous id, for what is held too.
            if let Some(id) = crate::identity::stored_anonymous_id() {
                if id != self.identity.anonymous_id {
                    self.identity = Identity::load();
                    for captured in self.held.iter().chain(&self.pending) {
                        captured.reassign(&id);
                    }
                }
            }
            self.save_identity();
            self.identity_saved = true;
        }
    }

    fn save_identity(&self) {
        if self.decision == Decision::Collect {
            self.identity
                .save(self.config.cookie_days, &self.config.cookie_domain);
        }
    }

    fn after(&self, signal: Signal, ms: f64) {
        lifecycle::after(&self.wake, signal as u32, ms);
    }

    fn in_flight_bytes(&self) -> usize {
        self.flights.iter().map(|f| f.bytes).sum()
    }

    /// Queue entries this tab may send now, oldest first: every tab's with the send lock,
    /// else its own and those of tabs gone for a minute. Reads only as many as can go in
    /// `max_events` events and `max_bytes` bytes (and one more, which tells the batch is full).
    fn sendable(&self, has_lock: bool, max_events: usize, max_bytes: usize) -> Sendable {
        let keys = storage::keys(outbox::PREFIX, true);
        let orphan_before = js::now() - ORPHAN_AFTER_MS;
        let mut out = Sendable::default();
        let mut bytes = 0;
        for i in 0..js::length(&keys) {
            if bytes > max_bytes || out.keys.len() > max_events {
                break;
            }
            let key = js::at(&keys, i);
            let ours = has_lock
                || outbox::parse_key(&key.as_string().unwrap_or_default())
                    .is_some_and(|k| k.tab == self.tab || (k.at as f64) < orphan_before);
            let json = storage::entry(&key);
            if ours && json.is_string() {
                let size = js::bytes(&json);
                bytes += size;
                out.sizes.push(size);
                out.keys.push(key);
                out.events.push(json);
            }
        }
        out.held_elsewhere = storage::held_among(&keys);
        out
    }

    /// The batch of `items` in `range`, reporting `reported` dropped events.
    fn batch(&self, items: &Sendable, range: Range<usize>, reported: u32) -> Batch {
        let (keys, events) = (js::list(), js::list());
        for i in range {
            if let (Some(key), Some(json)) = (items.keys.get(i), items.events.get(i)) {
                js::push(&keys, key);
                js::push(&events, json);
            }
        }
        let body = transport::body(&events, &self.config.write_key, reported);
        Batch {
            bytes: js::bytes(&body),
            keys,
            body,
            reported,
        }
    }

    /// Sends `batch` to the collector; with `chained`, its answer sends the next one.
    fn launch(&mut self, batch: Batch, chained: bool, keepalive: bool) {
        let Batch {
            keys,
            body,
            bytes,
            reported,
        } = batch;
        let id = self.next_flight;
        self.next_flight = self.next_flight.wrapping_add(1);
        let mark = if chained {
            SENDING_MARK_MS
        } else {
            HIDE_MARK_MS
        };
        storage::hold_entries(&keys, mark);
        let url = [self.config.endpoint.as_str(), "/v1/batch"].concat();
        transport::send(
            &self.wake,
            Signal::Answer as u32,
            id,
            &url,
            &body,
            keepalive,
        );
        self.flights.push(Flight {
            id,
            keys,
            bytes,
            reported,
            chained,
        });
    }
}

/// A batch ready to send.
struct Batch {
    /// Storage keys of its events (an array).
    keys: JsValue,
    body: JsValue,
    bytes: usize,
    reported: u32,
}

/// Queue entries chosen for sending, in parallel lists.
#[derive(Default)]
struct Sendable {
    keys: Vec<JsValue>,
    events: Vec<JsValue>,
    sizes: Vec<usize>,
    /// Entries left out because a send (another tab's, or a page-hide send) has them.
    held_elsewhere: usize,
}

fn tab_id() -> String {
    js::new_id()
        .as_string()
        .unwrap_or_default()
        .chars()
        .take(8)
        .collect()
}

/// Starts a tracker: loads what earlier pages stored and listens to the browser.
pub fn start(config: Config) -> Shared {
    let shared = Rc::new(RefCell::new(State::new(config)));
    let on_wake = shared.clone();
    let wake = Closure::<dyn Fn(u32, f64, f64, JsValue)>::new(move |signal, x, y, value| {
        if let Some(&signal) = SIGNALS.get(signal as usize) {
            woken(&on_wake, signal, x, y, value);
        }
    })
    .into_js_value();
    lifecycle::every_hide(&wake, Signal::Hidden as u32);
    lifecycle::every_online(&wake, Signal::Online as u32);
    navigation::on_route_change(&wake, Signal::Route as u32);
    capture::on_marked_action(&wake, Signal::Marked as u32);
    storage::on_other_tab_change(&wake, Signal::Consent as u32, CONSENT);
    shared.borrow_mut().wake = wake;
    shared
}

fn woken(shared: &Shared, signal: Signal, x: f64, y: f64, value: JsValue) {
    match signal {
        Signal::Hidden => on_hide(shared),
        Signal::Online => {
            // Back online (x = 0), the collector may be reachable again: the backoff is
            // over. Shown again (x = 1), what waits goes when the backoff allows.
            if x < 0.5 {
                shared.borrow_mut().retry_at = 0.0;
            }
            flush(shared);
        }
        Signal::Route => {
            let url = navigation::current_url();
            let is_new = {
                let state = shared.borrow();
                route::is_new_page(&state.last_page_url, &url, state.config.track_hash)
            };
            if is_new {
                note_page(shared);
                record(shared, "page", js::object());
            }
        }
        Signal::Marked => record(shared, "track", value),
        Signal::Idle => store_and_send(shared, STORE_SLICE),
        Signal::Timer => {
            shared.borrow_mut().flush_due = None;
            flush(shared);
        }
        Signal::Locked => {
            shared.borrow_mut().has_lock = x > 0.0;
            send_next(shared);
        }
        Signal::Busy => {
            // Another tab holds the lock and sends the shared queue; look again later in
            // case it finished before our newest events were stored.
            let mut state = shared.borrow_mut();
            state.sending = false;
            let interval = state.config.flush_interval_ms.max(250.0);
            drop(state);
            schedule_flush(shared, interval);
        }
        Signal::Answer => answered(shared, x as u32, y as u16, value.as_f64()),
        Signal::Consent => apply_consent(shared, js::parse(&value)),
    }
}

/// Records a call: microseconds on the page's critical path; storing and sending come later.
pub fn record(shared: &Shared, kind: &str, fields: JsValue) {
    let mut state = shared.borrow_mut();
    if state.decision == Decision::Refuse {
        return;
    }
    let at = state.call_time.unwrap_or_else(js::now);
    let captured = event::capture(
        kind,
        fields,
        at,
        &state.call_kept,
        &state.identity.anonymous_id,
        &state.identity.user_id,
    );
    if state.decision == Decision::Hold {
        if state.held.len() < state.config.max_queue {
            state.held.push(captured);
        }
        return;
    }
    state.pending.push(captured);
    if !state.store_scheduled {
        state.store_scheduled = true;
        lifecycle::idle(&state.wake, Signal::Idle as u32);
    }
}

/// Moves up to `limit` pending events into the durable queue, then schedules a send (and
/// another slice, if events remain).
fn store_and_send(shared: &Shared, limit: usize) {
    let Some(due) = store(shared, limit) else {
        return;
    };
    if due {
        flush(shared);
    } else {
        let interval = shared.borrow().config.flush_interval_ms;
        schedule_flush(shared, interval);
    }
}

/// Moves up to `limit` pending events into the durable queue (and schedules another slice,
/// if events remain). Returns whether enough are queued for a send to be due, or `None`
/// when nothing was stored.
fn store(shared: &Shared, limit: usize) -> Option<bool> {
    let mut state = shared.borrow_mut();
    state.store_scheduled = false;
    if state.decision != Decision::Collect || state.pending.is_empty() {
        return None;
    }
    let take = limit.min(state.pending.len());
    let pending: Vec<Captured> = state.pending.drain(..take).collect();
    if !state.pending.is_empty() {
        state.store_scheduled = true;
        lifecycle::idle(&state.wake, Signal::Idle as u32);
    }
    let mut queue = Queue::list();
    // Dropped here; added to the stored count, which every tab of the site shares.
    let mut dropped = 0;
    let mut session = state.session;
    // The limit holds for the event as sent, with its sentAt.
    let fits = |j: &JsValue| js::bytes(j) + outbox::SENT_AT_BYTES <= outbox::MAX_EVENT_BYTES;
    for captured in &pending {
        let next = Session::touch(session, captured.at);
        session = Some(next);
        let json = captured.complete(&state.fixed_context, next.id, &state.consent);
        let Some(json) = json.filter(fits) else {
            js::warn("event dropped: larger than the collector's 32 KB limit, or not serialisable");
            dropped += 1;
            continue;
        };
        state.seq += 1;
        let key = outbox::key(captured.at as u64, state.seq, &state.tab);
        let excess = outbox::overflow(queue.len(), 1, state.config.max_queue);
        dropped += queue.drop_oldest(excess);
        if !storage::set(&key, &json) {
            // Storage full: make room by dropping the oldest tenth, then try once more.
            let room = (queue.len() / 10).max(1);
            dropped += queue.drop_oldest(room);
            if !storage::set(&key, &json) {
                dropped += 1;
                continue;
            }
        }
        queue.push(&key);
    }
    state.session = session;
    if let Some(s) = session {
        let pair = js::list();
        js::push(&pair, &s.id.into());
        js::push(&pair, &s.last.into());
        storage::set(SESSION, &js::stringify(&pair));
    }
    if dropped > 0 {
        add_dropped(f64::from(dropped));
    }
    Some(queue.len() >= state.config.flush_at)
}

/// The durable queue as far as eviction goes: the keys of entries not being sent, oldest
/// first, plus those added since; entries being sent count towards the bound but are never
/// evicted (their request may deliver them: counting them as dropped would be false).
struct Queue {
    keys: JsValue,
    /// How many of the oldest are gone.
    first: usize,
    count: usize,
    /// Entries being sent.
    held: usize,
}

impl Queue {
    fn list() -> Queue {
        let keys = storage::keys(outbox::PREFIX, true);
        Queue {
            count: js::length(&keys),
            held: storage::held_among(&keys),
            keys,
            first: 0,
        }
    }

    fn len(&self) -> usize {
        self.held + self.count - self.first
    }

    /// Removes the `n` oldest entries not being sent (as many as there are); returns how
    /// many went.
    fn drop_oldest(&mut self, n: usize) -> u32 {
        let n = n.min(self.count - self.first);
        storage::remove_range(&self.keys, self.first, self.first + n);
        self.first += n;
        n as u32
    }

    fn push(&mut self, key: &str) {
        js::push(&self.keys, &key.into());
        self.count += 1;
    }
}

/// Events dropped and not yet reported, as stored (shared by the site's tabs).
fn stored_dropped() -> u32 {
    let count = js::number(&storage::get(DROPPED));
    if count.is_finite() && count > 0.0 {
        count as u32
    } else {
        0
    }
}

/// Adds `delta` (negative once reported) to the stored count of dropped events. Read and
/// written at once, so counts from other tabs in between are kept.
fn add_dropped(delta: f64) {
    let count = f64::from(stored_dropped()) + delta;
    if count > 0.0 {
        storage::set(DROPPED, &count.into());
    } else {
        storage::remove(DROPPED);
    }
}

fn schedule_flush(shared: &Shared, delay_ms: f64) {
    let due = js::now() + delay_ms;
    let mut state = shared.borrow_mut();
    if state.flush_due.is_some_and(|d| d <= due) {
        return;
    }
    state.flush_due = Some(due);
    state.after(Signal::Timer, delay_ms);
}

/// Starts sending the queue unless a send is under way, the browser is offline, consent
/// is missing, or a retry is not due yet. Returns a promise that resolves when the
/// attempt is over.
fn flush(shared: &Shared) -> JsValue {
    let mut state = shared.borrow_mut();
    if state.sending {
        return state.send_over.clone();
    }
    if state.decision != Decision::Collect || !lifecycle::is_online() {
        return js::resolved();
    }
    let wait = state.retry_at - js::now();
    if wait > 0.0 {
        drop(state);
        schedule_flush(shared, wait);
        return js::resolved();
    }
    state.sending = true;
    state.send_over = transport::exclusively(
        &state.wake,
        Signal::Locked as u32,
        Signal::Busy as u32,
        SEND_LOCK,
    );
    state.send_over.clone()
}

/// Sends the next batch of the queue, or ends the send (and gives the lock back) when
/// nothing is left.
fn send_next(shared: &Shared) {
    let mut state = shared.borrow_mut();
    let max_events = state.config.flush_at.max(100);
    let items = if state.decision == Decision::Collect {
        state.sendable(state.has_lock, max_events, outbox::MAX_BATCH_BYTES)
    } else {
        // Consent withdrawn or pending since the send began: nothing more goes.
        Sendable::default()
    };
    let batch = outbox::batches(&items.sizes, max_events, outbox::MAX_BATCH_BYTES)
        .into_iter()
        .next();
    match batch {
        Some(range) => {
            let batch = state.batch(&items, range, stored_dropped());
            // A retry goes without keepalive, in case the browser refused the first for its
            // quota (which other scripts on the page share).
            let keepalive = state.attempt == 0;
            state.launch(batch, true, keepalive);
        }
        None => {
            state.sending = false;
            transport::release_lock();
            if items.held_elsewhere > 0 {
                // If that send fails with its page gone, nothing else would look again.
                drop(state);
                schedule_flush(shared, HIDE_MARK_MS);
            }
        }
    }
}

/// The collector answered batch `id`: its events leave the queue, or stay for a retry.
fn answered(shared: &Shared, id: u32, status: u16, retry_after_ms: Option<f64>) {
    let mut state = shared.borrow_mut();
    let Some(at) = state.flights.iter().position(|f| f.id == id) else {
        return;
    };
    let flight = state.flights.swap_remove(at);
    match backoff::outcome(status) {
        outcome @ (Outcome::Delivered | Outcome::Refused) => {
            if outcome == Outcome::Refused {
                js::warn("the collector refused a batch; its events are dropped (see the response for reasons)");
            }
            storage::release_entries(&flight.keys, true);
            state.attempt = 0;
            state.retry_at = 0.0;
            if flight.reported > 0 && state.decision == Decision::Collect {
                add_dropped(-f64::from(flight.reported));
            }
            drop(state);
            if flight.chained {
                send_next(shared);
            }
        }
        Outcome::Retry => {
            storage::release_entries(&flight.keys, false);
            state.attempt += 1;
            let delay = backoff::next_delay_ms(state.attempt, js::random(), retry_after_ms);
            state.retry_at = js::now() + delay;
            if flight.chained {
                state.sending = false;
                transport::release_lock();
            }
            drop(state);
            schedule_flush(shared, delay);
        }
    }
}

/// The page is being hidden or closed: store what is pending now, and send what is queued
/// with `keepalive` within the browser's budget, without waiting for the lock.
fn on_hide(shared: &Shared) {
    // Stored, and what does not go now is sent by a timer, not under a lock taken now: that
    // could keep the page out of the back/forward cache.
    if store(shared, usize::MAX).is_some() {
        let interval = shared.borrow().config.flush_interval_ms;
        schedule_flush(shared, interval);
    }
    let mut state = shared.borrow_mut();
    if state.decision != Decision::Collect || !lifecycle::is_online() {
        return;
    }
    let mut budget = KEEPALIVE_BUDGET.saturating_sub(state.in_flight_bytes());
    // Other tabs' entries only while this tab holds the send lock: else another tab may be
    // sending them.
    let everyone = state.sending && state.has_lock;
    let items = state.sendable(everyone, usize::MAX, budget);
    for range in outbox::batches(
        &items.sizes,
        usize::MAX,
        budget.min(outbox::MAX_BATCH_BYTES),
    ) {
        let batch = state.batch(&items, range, 0);
        if batch.bytes > budget {
            break;
        }
        budget -= batch.bytes;
        state.launch(batch, false, true);
    }
}

/// Remembers the current URL as the last page seen (route changes compare with it).
pub fn note_page(shared: &Shared) {
    shared.borrow_mut().last_page_url = navigation::current_url();
}

/// Writes pending events to the durable queue now, without sending.
pub fn store_now(shared: &Shared) {
    store(shared, usize::MAX);
}

/// Stores and sends now; returns a promise that resolves when the attempt is over.
pub fn flush_now(shared: &Shared) -> JsValue {
    store(shared, usize::MAX);
    flush(shared)
}

/// Updates the identity for an `identify` call; returns the traits the event carries (the
/// identity's own object: the event's fields take a copy, `js::fields`).
pub fn identify(shared: &Shared, user_id: JsValue, traits: JsValue) -> JsValue {
    let mut state = shared.borrow_mut();
    if user_id.is_truthy() {
        state.identity.user_id = user_id;
    }
    if traits.is_object() {
        js::assign(&state.identity.traits, &traits);
    }
    state.save_identity();
    state.identity.traits.clone()
}

/// Updates the identity for an `alias` call; returns the previous id.
pub fn alias(shared: &Shared, user_id: JsValue, previous_id: JsValue) -> JsValue {
    let mut state = shared.borrow_mut();
    let previous = if previous_id.is_truthy() {
        previous_id
    } else if state.identity.user_id.is_truthy() {
        state.identity.user_id.clone()
    } else {
        state.identity.anonymous_id.clone()
    };
    state.identity.user_id = user_id;
    state.save_identity();
    previous
}

/// Logout: a new anonymous id, no user, no traits, a new session.
pub fn reset(shared: &Shared) {
    let mut state = shared.borrow_mut();
    state.identity = Identity::fresh();
    state.session = None;
    storage::remove(SESSION);
    state.save_identity();
}

/// Applies the visitor's consent choices at once, here and (through storage) in the
/// site's other open tabs.
pub fn consent(shared: &Shared, preferences: JsValue) {
    let json = js::stringify(&preferences);
    apply_consent(shared, preferences);
    // Stored last: other tabs apply it when they see it change, and must by then see the
    // visitor this tab stored (or erased) in applying it.
    storage::set(CONSENT, &json);
}

/// Consent choices: an object, or `undefined` for anything else (none given).
fn choices(value: JsValue) -> JsValue {
    if value.is_object() {
        value
    } else {
        JsValue::UNDEFINED
    }
}

/// Applies consent choices (an object; anything else means none given).
fn apply_consent(shared: &Shared, preferences: JsValue) {
    let mut state = shared.borrow_mut();
    state.consent = choices(preferences);
    state.decide();
    match state.decision {
        Decision::Collect => {
            let held = std::mem::take(&mut state.held);
            state.pending.extend(held);
            drop(state);
            // In idle slices: up to the queue's bound of held events may be waiting.
            store_and_send(shared, STORE_SLICE);
        }
        Decision::Refuse => {
            state.held.clear();
            state.pending.clear();
            // All the tracker stored but the choice: the queue and its marks, the session,
            // the dropped count, the calls the loader kept, the visitor's ids and traits.
            storage::forget(STORAGE_PREFIX, CONSENT);
            Identity::erase(&state.config.cookie_domain);
            // Forgotten in memory too: a later consent on this page starts a new visitor.
            state.identity = Identity::fresh();
            state.session = None;
            state.identity_saved = false;
        }
        Decision::Hold => {}
    }
}
