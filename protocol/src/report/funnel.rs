//! The funnel: how many people did each step, in order, within a conversion window,
//! computed per profile from its events in event-time order.

use crate::time::Millis;

/// The steps shown when none are asked for: the e-commerce spec's path to an order.
pub const DEFAULT_STEPS: [&str; 4] = [
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
];
/// The conversion window when none is asked for.
pub const DEFAULT_WINDOW: Millis = 7 * 24 * 3_600_000;
/// Most steps a funnel may have.
pub const MAX_STEPS: usize = 10;

/// A funnel: its steps (event names), in order, and when the first step must fall.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    /// Event names, in the order they must happen.
    pub steps: Vec<String>,
    /// Every later step must happen within this long of the first.
    pub window: Millis,
    /// The first step falls at or after this instant…
    pub from: Millis,
    /// …and before this one.
    pub to: Millis,
}

impl Funnel {
    /// How many steps, in order, one profile's track events (`(time, name)`, sorted by
    /// time) reach: the best over every first step in the range. For a given start, taking
    /// each next step at its earliest occurrence is best, since it leaves the most time
    /// for the steps after it.
    pub fn reached(&self, events: &[(Millis, String)]) -> usize {
        let Some(first) = self.steps.first() else {
            return 0;
        };
        let mut best = 0;
        for (start, (at, name)) in events.iter().enumerate() {
            if name != first || *at < self.from || *at >= self.to {
                continue;
            }
            let deadline = at.saturating_add(self.window);
            let mut reached = 1;
            // Each later event counts for one step at most, in the order events happened.
            for (t, n) in &events[start + 1..] {
                if *t > deadline || reached == self.steps.len() {
                    break;
                }
                if n == &self.steps[reached] {
                    reached += 1;
                }
            }
            best = best.max(reached);
            if best == self.steps.len() {
                break;
            }
        }
        best
    }

    /// Adds one profile to `counts` (profiles that reached each step, by step).
    pub fn count(&self, events: &[(Millis, String)], counts: &mut [u64]) {
        let reached = self.reached(events);
        for slot in counts.iter_mut().take(reached) {
            *slot += 1;
        }
    }
}
