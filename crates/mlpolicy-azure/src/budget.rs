//! Pacing for Graph's directory budget (docs/azure-wire.md §7.6).
//!
//! Graph counts resource units per app and tenant over 10 s and, unlike ARM, reports nothing
//! until 80% of the budget is spent; from then on its answers carry
//! `x-ms-throttle-limit-percentage`. Two rules keep a burst of `$batch` items (a plan reads
//! the members and owners of every group at once) from overrunning it:
//!
//! - **items in flight are capped** at [`ITEMS_IN_FLIGHT`], so what is already sent when the
//!   first warning arrives fits in the 20% Graph has left of even the smallest budget;
//! - **after a warning** the client estimates the budget from its own spend (a token bucket
//!   refilling a tenth of the budget per second, the model of "N units per 10 s") and sends
//!   further items no faster than that refill, keeping a [`MARGIN`] unused.
//!
//! Without warnings (a quiet tenant, or the emulator without throttling) only the cap applies.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Batch items in flight at most: 500, a seventh of the smallest documented budget (3,500
/// units per 10 s), i.e. 25 full `$batch` requests.
pub(crate) const ITEMS_IN_FLIGHT: u32 = 500;
/// Graph's budget window.
const WINDOW: Duration = Duration::from_secs(10);
/// Share of the estimated budget left unused, for other clients of the same app and for
/// the rounding of the percentage Graph reports.
const MARGIN: f64 = 0.1;

#[derive(Debug)]
struct State {
    /// Items sent within the last window, oldest first.
    sent: VecDeque<(Instant, u32)>,
    /// Items sent whose answer has not come back.
    in_flight: u32,
    /// Estimated budget (units per window), once Graph has warned.
    budget: Option<f64>,
    /// Units the client may still spend, by its estimate; negative while it owes a wait.
    tokens: f64,
    last: Instant,
}

/// The client's view of the Graph directory budget.
#[derive(Debug)]
pub(crate) struct GraphBudget {
    permits: Semaphore,
    state: Mutex<State>,
}

impl Default for GraphBudget {
    fn default() -> Self {
        Self {
            permits: Semaphore::new(ITEMS_IN_FLIGHT as usize),
            state: Mutex::new(State {
                sent: VecDeque::new(),
                in_flight: 0,
                budget: None,
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }
}

impl GraphBudget {
    /// Waits until `items` batch items may be sent; the permit is held while they are in
    /// flight, and [`Self::observe`] must be called with their answer (or failure).
    pub(crate) async fn acquire(&self, items: usize) -> Option<SemaphorePermit<'_>> {
        let permit = self.permits.acquire_many(clamp(items)).await.ok();
        let wait = self.reserve(items, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        permit
    }

    /// Counts `items` as sent at `now`; how long they must wait for the budget.
    fn reserve(&self, items: usize, now: Instant) -> Duration {
        let n = clamp(items);
        let Ok(mut s) = self.state.lock() else { return Duration::ZERO };
        s.sent.push_back((now, n));
        s.in_flight += n;
        let Some(budget) = s.budget else { return Duration::ZERO };
        let refill = budget / WINDOW.as_secs_f64();
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.tokens = (s.tokens + elapsed * refill).min(budget * (1.0 - MARGIN)) - f64::from(n);
        s.last = now;
        if s.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.tokens / refill) }
    }

    /// Takes in the answer to `items` items: the highest `x-ms-throttle-limit-percentage`
    /// among them (1.0 when any was throttled), or `None` when Graph did not warn.
    pub(crate) fn observe(&self, items: usize, used: Option<f64>) {
        self.observe_at(items, used, Instant::now());
    }

    fn observe_at(&self, items: usize, used: Option<f64>, now: Instant) {
        let n = clamp(items);
        let Ok(mut s) = self.state.lock() else { return };
        s.in_flight = s.in_flight.saturating_sub(n);
        while s.sent.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW) {
            s.sent.pop_front();
        }
        let in_flight = f64::from(s.in_flight);
        match used.filter(|p| p.is_finite() && *p > 0.0) {
            Some(p) => {
                // Spent by Graph's count = sent − still in flight; in a bucket refilling
                // budget/10 s per second, `p × budget = spent − budget × t / 10 s`.
                let sent_total: f64 = s.sent.iter().map(|(_, k)| f64::from(*k)).sum();
                let since = s.sent.front().map_or(0.0, |(t, _)| now.saturating_duration_since(*t).as_secs_f64());
                let spent = (sent_total - in_flight).max(1.0);
                // Never below what may be in flight: an estimate from a handful of items
                // would stall the client for minutes.
                let budget = (spent / (p + since / WINDOW.as_secs_f64())).max(f64::from(ITEMS_IN_FLIGHT));
                s.budget = Some(budget);
                s.tokens = budget * (1.0 - MARGIN - p) - in_flight;
                s.last = now;
            }
            None => {
                // Under 80% spent: at least the 20% Graph does not warn about is left.
                if let Some(budget) = s.budget {
                    s.tokens = s.tokens.max(budget * (0.2 - MARGIN) - in_flight);
                }
            }
        }
    }
}

/// A request's items as permits: a batch holds at most 20, the cap keeps a larger call from
/// waiting forever.
fn clamp(items: usize) -> u32 {
    u32::try_from(items).unwrap_or(u32::MAX).min(ITEMS_IN_FLIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_warning_means_no_wait() {
        let b = GraphBudget::default();
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(b.reserve(20, t0), Duration::ZERO);
            b.observe_at(20, None, t0);
        }
    }

    #[test]
    fn a_warning_paces_at_the_estimated_refill() {
        let b = GraphBudget::default();
        let t0 = Instant::now();
        // 2,800 units sent over one second, all answered.
        for i in 0..140u32 {
            let at = t0 + Duration::from_millis(u64::from(i) * 1000 / 140);
            assert_eq!(b.reserve(20, at), Duration::ZERO);
            b.observe_at(20, None, at);
        }
        let t1 = t0 + Duration::from_secs(1);
        // Graph's bucket of 3,500 refilling 350/s: 2,800 drawn in that second leave 2,450
        // used, 0.7 (the emulator would not warn below 0.8; the arithmetic is the same).
        b.observe_at(0, Some(0.7), t1);
        let budget = b.state.lock().unwrap().budget.unwrap();
        assert!((budget - 3500.0).abs() < 5.0, "estimated {budget}");
        // 0.2 of it may go at once (10% kept unused), then 350 units per second.
        for _ in 0..34 {
            assert_eq!(b.reserve(20, t1), Duration::ZERO);
        }
        let wait = b.reserve(20, t1) + b.reserve(20, t1);
        assert!(wait > Duration::ZERO);
        let last = b.reserve(350, t1);
        assert!((0.95..=1.25).contains(&last.as_secs_f64()), "350 more units wait {last:?}");
    }

    #[test]
    fn items_in_flight_count_against_the_estimate() {
        let b = GraphBudget::default();
        let t0 = Instant::now();
        for _ in 0..200 {
            b.reserve(20, t0);
        }
        // 4,000 sent, 3,500 of them answered at once; then Graph says 1.0 (all spent).
        for _ in 0..175 {
            b.observe_at(20, None, t0);
        }
        b.observe_at(0, Some(1.0), t0);
        let s = b.state.lock().unwrap();
        assert!((s.budget.unwrap() - 3500.0).abs() < 1.0);
        assert!(s.tokens < -800.0, "the 500 in flight and the margin are owed: {}", s.tokens);
    }

    #[test]
    fn an_estimate_from_a_few_items_is_floored() {
        let b = GraphBudget::default();
        let t0 = Instant::now();
        b.reserve(5, t0);
        b.observe_at(5, Some(1.0), t0);
        assert_eq!(b.state.lock().unwrap().budget, Some(f64::from(ITEMS_IN_FLIGHT)));
        // The next batch waits a fraction of a second, not minutes.
        let wait = b.reserve(20, t0);
        assert!(wait <= Duration::from_secs(2), "{wait:?}");
    }

    #[tokio::test]
    async fn items_in_flight_are_capped() {
        let b = std::sync::Arc::new(GraphBudget::default());
        let first = b.acquire(ITEMS_IN_FLIGHT as usize).await;
        assert!(first.is_some());
        let b2 = b.clone();
        let mut second = tokio::spawn(async move { b2.acquire(20).await.is_some() });
        let waited = tokio::time::timeout(Duration::from_millis(50), &mut second).await;
        assert!(waited.is_err(), "a second request waits for the first to answer");
        drop(first);
        b.observe(ITEMS_IN_FLIGHT as usize, None);
        assert!(second.await.unwrap());
    }
}
