//! From a call to the collector: capture, the durable queue, batching, retries, and the
//! last send when the page is hidden. The decisions come from the pure modules; this
//! module does the I/O in the right order.
//!
//! Promise kept: an event is in browser storage before the first attempt to send it, and
//! leaves storage only when the collector has answered for it (2xx, or a 4xx that no
//! retry can fix). Sends from several tabs are serialised by a Web Lock.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Date, Function, Math, Object, Promise};
use wasm_bindgen::prelude::*;

use crate::backoff::{self, Outcome};
use crate::config::Config;
use crate::consent::{self, Decision};
use crate::event::{self, Captured};
use crate::identity::Identity;
use crate::outbox;
use crate::session::Session;
use crate::{context, js, lifecycle, navigation, route, storage, transport};

/// localStorage key of the visitor's consent choices (JSON).
pub const CONSENT: &str = "cdp_consent";
/// localStorage key of the session (`[id, last]`).
pub const SESSION: &str = "cdp_sid";
/// localStorage key of the count of events dropped and not yet reported.
pub const DROPPED: &str = "cdp_drop";
/// Name of the Web Lock that one tab at a time holds while sending the queue.
const SEND_LOCK: &str = "cdp-send";
/// Most events stored in one idle slice: more would risk a long task (> 50 ms).
const STORE_SLICE: usize = 100;
/// Without Web Locks a tab sends only its own events, and those of tabs gone this long.
const ORPHAN_AFTER_MS: f64 = 60_000.0;
/// What all in-flight keepalive requests may carry together (the browser's 64 KB, less margin).
const KEEPALIVE_BUDGET: usize = 63 * 1024;

/// The tracker's state, shared by the page's calls and the browser's callbacks.
pub type Shared = Rc<RefCell<State>>;

/// Everything the tracker keeps in memory.
pub struct State {
    /// Settings.
    pub config: Config,
    /// Who the visitor is.
    pub identity: Identity,
    identity_saved: bool,
    fixed_context: Object,
    consent: JsValue,
    decision: Decision,
    /// Captured, not yet in storage (stored at idle time or when the page hides).
    pending: Vec<Captured>,
    /// Captured while consent is pending: memory only.
    held: Vec<Captured>,
    store_scheduled: bool,
    flush_due: Option<f64>,
    sending: bool,
    attempt: u32,
    retry_at: f64,
    in_flight: Vec<String>,
    in_flight_bytes: usize,
    last_page_url: String,
    tab: String,
    session: Option<Session>,
    dropped: u32,
    seq: u64,
    /// Time to stamp calls with instead of now (calls replayed by the loader).
    pub call_time: Option<f64>,
}

impl State {
    /// The state for a new page, from storage.
    pub fn new(config: Config) -> State {
        let consent = storage::get(CONSENT)
            .map(|c| js::parse(&c))
            .filter(JsValue::is_object)
            .unwrap_or(JsValue::UNDEFINED);
        let mut state = State {
            config,
            identity: Identity::load(),
            identity_saved: false,
            fixed_context: context::fixed(),
            consent,
            decision: Decision::Hold,
            pending: Vec::new(),
            held: Vec::new(),
            store_scheduled: false,
            flush_due: None,
            sending: false,
            attempt: 0,
            retry_at: 0.0,
            in_flight: Vec::new(),
            in_flight_bytes: 0,
            last_page_url: String::new(),
            tab: identity_tab(),
            session: None,
            dropped: 0,
            seq: 0,
            call_time: None,
        };
        state.decision = state.decide();
        if state.decision == Decision::Collect {
            state.load_stored();
        }
        state
    }

    fn decide(&self) -> Decision {
        let category = &self.config.consent.category;
        let choice = event::get(&self.consent, category).as_bool();
        consent::decide(
            &self.config.consent,
            choice,
            context::global_privacy_control(),
            context::do_not_track(),
        )
    }

    fn load_stored(&mut self) {
        self.session = storage::get(SESSION).map(|s| js::parse(&s)).and_then(|a| {
            Some(Session {
                id: js::get(&a, "0").as_f64()?,
                last: js::get(&a, "1").as_f64()?,
            })
        });
        self.dropped = storage::get(DROPPED)
            .map(|d| js::number(&d.into()))
            .filter(|d| d.is_finite() && *d > 0.0)
            .map_or(0, |d| d as u32);
        if !self.identity_saved {
            self.identity
                .save(self.config.cookie_days, &self.config.cookie_domain);
            self.identity_saved = true;
        }
    }

    fn collector_url(&self) -> String {
        [self.config.endpoint.as_str(), "/v1/batch"].concat()
    }
}

fn identity_tab() -> String {
    crate::identity::new_id().chars().take(8).collect()
}

fn warn(message: &str) {
    js::warn(message);
}

/// Records a call: microseconds on the page's critical path; storing and sending come later.
pub fn record(shared: &Shared, kind: &str, fields: Object) {
    let mut state = shared.borrow_mut();
    if state.decision == Decision::Refuse {
        return;
    }
    let at = state.call_time.unwrap_or_else(Date::now);
    let user_id = state.identity.user_id.clone();
    let captured = event::capture(
        kind,
        fields,
        at,
        &state.identity.anonymous_id,
        user_id.as_deref(),
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
        store_when_idle(shared);
    }
}

fn store_when_idle(shared: &Shared) {
    let shared = shared.clone();
    lifecycle::idle(move || store(&shared, STORE_SLICE));
}

/// Moves up to `limit` pending events into the durable queue, then schedules a send (and
/// another slice, if events remain).
fn store(shared: &Shared, limit: usize) {
    let mut state = shared.borrow_mut();
    state.store_scheduled = false;
    if state.decision != Decision::Collect || state.pending.is_empty() {
        return;
    }
    let take = limit.min(state.pending.len());
    let pending: Vec<Captured> = state.pending.drain(..take).collect();
    if !state.pending.is_empty() {
        state.store_scheduled = true;
        store_when_idle(shared);
    }
    let mut queued = storage::keys(outbox::PREFIX);
    let dropped_before = state.dropped;
    let mut session = state.session;
    for captured in &pending {
        let next = Session::touch(session, captured.at);
        session = Some(next);
        let Some(json) = event::complete(captured, &state.fixed_context, next.id, &state.consent)
        else {
            state.dropped += 1;
            continue;
        };
        if json.len() > outbox::MAX_EVENT_BYTES {
            warn("event dropped: larger than the collector's 32 KB limit");
            state.dropped += 1;
            continue;
        }
        let message_id = event::get(&captured.event, "messageId")
            .as_string()
            .unwrap_or_default();
        state.seq += 1;
        let key = outbox::key(captured.at as u64, state.seq, &state.tab, &message_id);
        let excess = outbox::overflow(queued.len(), 1, state.config.max_queue);
        state.dropped += drop_oldest(&mut queued, excess);
        if !storage::set(&key, &json) {
            // Storage full: make room by dropping the oldest tenth, then try once more.
            let room = (queued.len() / 10).max(1);
            state.dropped += drop_oldest(&mut queued, room);
            if !storage::set(&key, &json) {
                state.dropped += 1;
                continue;
            }
        }
        queued.push(key);
    }
    state.session = session;
    if let Some(s) = session {
        let pair = js_sys::Array::of2(&s.id.into(), &s.last.into());
        if let Some(text) = js::stringify(&pair) {
            storage::set(SESSION, &text);
        }
    }
    if state.dropped != dropped_before {
        save_dropped(state.dropped);
    }
    let (count, flush_at, interval) = (
        queued.len(),
        state.config.flush_at,
        state.config.flush_interval_ms,
    );
    drop(state);
    if count >= flush_at {
        let _ = flush(shared);
    } else {
        schedule_flush(shared, interval);
    }
}

fn drop_oldest(queued: &mut Vec<String>, count: usize) -> u32 {
    let count = count.min(queued.len());
    for key in queued.drain(..count) {
        storage::remove(&key);
    }
    count as u32
}

fn save_dropped(count: u32) {
    match js::stringify(&f64::from(count).into()) {
        Some(text) if count > 0 => {
            storage::set(DROPPED, &text);
        }
        _ => storage::remove(DROPPED),
    }
}

fn schedule_flush(shared: &Shared, delay_ms: f64) {
    let due = Date::now() + delay_ms;
    {
        let mut state = shared.borrow_mut();
        if state.flush_due.is_some_and(|d| d <= due) {
            return;
        }
        state.flush_due = Some(due);
    }
    let shared = shared.clone();
    lifecycle::after(delay_ms, move || {
        shared.borrow_mut().flush_due = None;
        let _ = flush(&shared);
    });
}

/// Starts sending the queue unless a send is under way, the browser is offline, consent
/// is missing, or a retry is not due yet.
fn flush(shared: &Shared) -> Promise {
    {
        let state = shared.borrow();
        if state.sending || state.decision != Decision::Collect || !lifecycle::is_online() {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let wait = state.retry_at - Date::now();
        if wait > 0.0 {
            drop(state);
            schedule_flush(shared, wait);
            return Promise::resolve(&JsValue::UNDEFINED);
        }
    }
    shared.borrow_mut().sending = true;
    let task_shared = shared.clone();
    let shared = shared.clone();
    transport::exclusively(
        SEND_LOCK,
        move |has_lock, done| send_queued(&task_shared, has_lock, done),
        move |ran| {
            shared.borrow_mut().sending = false;
            if !ran {
                // Another tab holds the lock and sends the shared queue; look again later in
                // case it finished before our newest events were stored.
                let interval = shared.borrow().config.flush_interval_ms;
                schedule_flush(&shared, interval.max(250.0));
            }
        },
    )
}

/// The body of a batch of queued `(key, json)` events, stamped with the time now.
fn body_of(batch: &[(String, String)], write_key: &str, dropped: u32) -> String {
    let events: Vec<&str> = batch.iter().map(|(_, json)| json.as_str()).collect();
    outbox::batch_body(&events, &event::iso(Date::now()), write_key, dropped)
}

/// What of the queue this tab may send now, oldest first, with the stored JSON.
fn sendable(state: &State, has_lock: bool) -> Vec<(String, String)> {
    let now = Date::now();
    storage::keys(outbox::PREFIX)
        .into_iter()
        .filter(|key| !state.in_flight.contains(key))
        .filter(|key| {
            has_lock
                || outbox::parse_key(key)
                    .is_some_and(|k| k.tab == state.tab || (k.at as f64) < now - ORPHAN_AFTER_MS)
        })
        .filter_map(|key| storage::get(&key).map(|json| (key, json)))
        .collect()
}

/// Sends the queue batch after batch while batches are delivered, then calls `done`.
fn send_queued(shared: &Shared, has_lock: bool, done: Function) {
    let (url, body, keys) = {
        let state = shared.borrow();
        let items = sendable(&state, has_lock);
        let sizes: Vec<usize> = items.iter().map(|(_, json)| json.len()).collect();
        let Some(range) = outbox::batches(
            &sizes,
            state.config.flush_at.max(100),
            outbox::MAX_BATCH_BYTES,
        )
        .into_iter()
        .next() else {
            let _ = done.call0(&JsValue::UNDEFINED);
            return;
        };
        let Some(batch) = items.get(range) else {
            let _ = done.call0(&JsValue::UNDEFINED);
            return;
        };
        let body = body_of(batch, &state.config.write_key, state.dropped);
        let keys: Vec<String> = batch.iter().map(|(key, _)| key.clone()).collect();
        (state.collector_url(), body, keys)
    };
    let reported = shared.borrow().dropped;
    let next = shared.clone();
    deliver(
        shared,
        &url,
        body,
        keys,
        Box::new(move |settled| {
            if !settled {
                let _ = done.call0(&JsValue::UNDEFINED);
                return;
            }
            {
                let mut state = next.borrow_mut();
                if reported > 0 {
                    state.dropped -= reported.min(state.dropped);
                    save_dropped(state.dropped);
                }
            }
            send_queued(&next, has_lock, done);
        }),
    );
}

/// Sends one batch with `keepalive`, then calls `then(true)` when it is settled (its events
/// leave the queue), `then(false)` when it is to be retried (and a retry is scheduled).
fn deliver(
    shared: &Shared,
    url: &str,
    body: String,
    keys: Vec<String>,
    // Boxed: one copy of the send callback's code for both callers.
    then: Box<dyn FnOnce(bool)>,
) {
    let bytes = body.len();
    {
        let mut state = shared.borrow_mut();
        state.in_flight.extend(keys.iter().cloned());
        state.in_flight_bytes += bytes;
    }
    let shared = shared.clone();
    transport::send(url, &body, true, move |answer| {
        let mut state = shared.borrow_mut();
        state.in_flight.retain(|k| !keys.contains(k));
        state.in_flight_bytes -= bytes.min(state.in_flight_bytes);
        match backoff::outcome(answer.status) {
            outcome @ (Outcome::Delivered | Outcome::Refused) => {
                if outcome == Outcome::Refused {
                    warn("the collector refused a batch; its events are dropped (see the response for reasons)");
                }
                for key in &keys {
                    storage::remove(key);
                }
                state.attempt = 0;
                state.retry_at = 0.0;
                drop(state);
                then(true);
            }
            Outcome::Retry => {
                state.attempt += 1;
                let delay =
                    backoff::next_delay_ms(state.attempt, Math::random(), answer.retry_after_ms);
                state.retry_at = Date::now() + delay;
                drop(state);
                schedule_flush(&shared, delay);
                then(false);
            }
        }
    });
}

/// The page is being hidden or closed: store what is pending now, and send what is queued
/// with `keepalive` within the browser's budget, without waiting for the lock.
fn on_hide(shared: &Shared) {
    store(shared, usize::MAX);
    let batches = {
        let state = shared.borrow();
        if state.decision != Decision::Collect || !lifecycle::is_online() {
            return;
        }
        let items = sendable(&state, true);
        let sizes: Vec<usize> = items.iter().map(|(_, json)| json.len()).collect();
        let mut budget = KEEPALIVE_BUDGET.saturating_sub(state.in_flight_bytes);
        let mut batches = Vec::new();
        for range in outbox::batches(&sizes, usize::MAX, budget.min(outbox::MAX_BATCH_BYTES)) {
            let Some(batch) = items.get(range) else {
                break;
            };
            let body = body_of(batch, &state.config.write_key, 0);
            if body.len() > budget {
                break;
            }
            budget -= body.len();
            let keys: Vec<String> = batch.iter().map(|(key, _)| key.clone()).collect();
            batches.push((state.collector_url(), body, keys));
        }
        batches
    };
    for (url, body, keys) in batches {
        deliver(shared, &url, body, keys, Box::new(|_| {}));
    }
}

/// Sets up the page-wide listeners: hide, online, route changes, marked elements.
pub fn listen(shared: &Shared) {
    let s = shared.clone();
    lifecycle::every_hide(move || on_hide(&s));
    let s = shared.clone();
    lifecycle::every_online(move || {
        s.borrow_mut().retry_at = 0.0;
        let _ = flush(&s);
    });
    let s = shared.clone();
    navigation::on_route_change(move || {
        let url = navigation::current_url();
        let is_new = {
            let state = s.borrow();
            route::is_new_page(&state.last_page_url, &url, state.config.track_hash)
        };
        if is_new {
            note_page(&s);
            record(&s, "page", Object::new());
        }
    });
    let s = shared.clone();
    crate::capture::on_marked_action(move |name, properties| {
        let fields = Object::new();
        event::set(&fields, "event", &name);
        event::set(&fields, "properties", &properties);
        record(&s, "track", fields);
    });
}

/// Remembers the current URL as the last page seen (route changes compare with it).
pub fn note_page(shared: &Shared) {
    shared.borrow_mut().last_page_url = navigation::current_url();
}

/// Writes pending events to the durable queue now, without sending.
pub fn store_now(shared: &Shared) {
    store(shared, usize::MAX);
}

/// Stores and sends now; resolves when the attempt is over.
pub fn flush_now(shared: &Shared) -> Promise {
    store(shared, usize::MAX);
    flush(shared)
}

/// Updates the identity for an `identify` call; returns the traits the event carries.
pub fn identify(shared: &Shared, user_id: Option<String>, traits: Option<Object>) -> Object {
    let mut state = shared.borrow_mut();
    if let Some(id) = user_id {
        state.identity.user_id = Some(id);
    }
    if let Some(traits) = traits {
        Object::assign(&state.identity.traits, &traits);
    }
    save_identity(&state);
    Object::assign(&Object::new(), &state.identity.traits)
}

/// Updates the identity for an `alias` call; returns the previous id.
pub fn alias(shared: &Shared, user_id: &str, previous_id: Option<String>) -> String {
    let mut state = shared.borrow_mut();
    let previous = previous_id
        .or_else(|| state.identity.user_id.clone())
        .unwrap_or_else(|| state.identity.anonymous_id.clone());
    state.identity.user_id = Some(user_id.to_owned());
    save_identity(&state);
    previous
}

fn save_identity(state: &State) {
    if state.decision == Decision::Collect {
        state
            .identity
            .save(state.config.cookie_days, &state.config.cookie_domain);
    }
}

/// Logout: a new anonymous id, no user, no traits, a new session.
pub fn reset(shared: &Shared) {
    let mut state = shared.borrow_mut();
    state.identity = Identity {
        anonymous_id: crate::identity::new_id(),
        user_id: None,
        traits: Object::new(),
    };
    state.session = None;
    storage::remove(SESSION);
    save_identity(&state);
}

/// Applies the visitor's consent choices at once.
pub fn consent(shared: &Shared, preferences: Object) {
    let mut state = shared.borrow_mut();
    if let Some(text) = js::stringify(&preferences) {
        storage::set(CONSENT, &text);
    }
    state.consent = preferences.into();
    state.decision = state.decide();
    match state.decision {
        Decision::Collect => {
            state.load_stored();
            let held = std::mem::take(&mut state.held);
            state.pending.extend(held);
            drop(state);
            store(shared, usize::MAX);
        }
        Decision::Refuse => {
            state.held.clear();
            state.pending.clear();
            for key in storage::keys(outbox::PREFIX) {
                storage::remove(&key);
            }
            for key in [SESSION, DROPPED] {
                storage::remove(key);
            }
            crate::identity::Identity::erase(&state.config.cookie_domain);
            state.identity_saved = false;
        }
        Decision::Hold => {}
    }
}
