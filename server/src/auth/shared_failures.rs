//! Failure budgets that hold across replicas: on PostgreSQL each replica
//! adds its failed authentications to counters in the database (a count per
//! key and minute, written in batches off the request path) and refuses a
//! key as soon as the deployment as a whole has spent its budget.
//!
//! A replica still keeps its own in-memory budget (`failures.rs`), so a
//! database that cannot be reached leaves each replica its own budget
//! rather than none. The deployment admits a little more than its budget:
//! a failed call is answered only once its failure is counted, but another
//! replica learns the count with its own next failure, so each replica
//! may admit one more, and so may every failing call already in flight.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::failures::FailureThrottle;
use super::throttle::MAX_TRACKED;
use crate::store::{FailureTally, Store};

/// The longest a failed call waits for its failure to be counted.
const COUNT_WAIT: Duration = Duration::from_secs(1);
/// Length of one counting window, in milliseconds (budgets are per minute).
const WINDOW_MS: f64 = 60_000.0;

/// Failures charged on this replica and not yet added to the shared counts,
/// in numbered batches: a failed call is answered once the batch holding
/// its failure has been counted (or could not be), so that a caller cannot
/// get ahead of the counts by failing faster than they are written.
pub(super) struct PendingFailures {
    batch: Mutex<Batch>,
    wake: Notify,
    /// The number of the last batch written (or given up on).
    written: watch::Sender<u64>,
}

/// The batch being filled.
struct Batch {
    number: u64,
    counts: HashMap<String, u32>,
}

/// Resolves once a failure has been counted by every replica's budget, or
/// after [`COUNT_WAIT`] if the database is slow to say so.
pub(crate) struct Counted(Option<(watch::Receiver<u64>, u64)>);

impl Counted {
    /// Nothing to wait for (failures are not shared).
    pub(super) fn now() -> Self {
        Self(None)
    }

    /// Waits until the failure is counted.
    pub(crate) async fn wait(self) {
        if let Some((mut written, batch)) = self.0 {
            let counted = written.wait_for(|last| *last >= batch);
            let _ = tokio::time::timeout(COUNT_WAIT, counted).await;
        }
    }
}

impl PendingFailures {
    pub(super) fn new() -> Self {
        Self {
            batch: Mutex::new(Batch {
                number: 1,
                counts: HashMap::new(),
            }),
            wake: Notify::new(),
            written: watch::Sender::new(0),
        }
    }

    /// Adds one failure of each key to the next write. Past [`MAX_TRACKED`]
    /// keys waiting, a new key is left to this replica's own budget.
    pub(super) fn charge<'a>(&self, keys: impl IntoIterator<Item = &'a String>) -> Counted {
        let Ok(mut batch) = self.batch.lock() else {
            return Counted::now();
        };
        for key in keys {
            if let Some(count) = batch.counts.get_mut(key) {
                *count = count.saturating_add(1);
            } else if batch.counts.len() < MAX_TRACKED {
                batch.counts.insert(key.clone(), 1);
            }
        }
        let number = batch.number;
        drop(batch);
        self.wake.notify_one();
        Counted(Some((self.written.subscribe(), number)))
    }

    /// Waits until a failure is charged.
    async fn charged(&self) {
        self.wake.notified().await;
    }

    /// The batch filled so far, and its number; the next charge goes to a
    /// new one.
    fn take(&self) -> (u64, Vec<(String, u32)>) {
        let Ok(mut batch) = self.batch.lock() else {
            return (0, Vec::new());
        };
        let number = batch.number;
        batch.number += 1;
        (number, batch.counts.drain().collect())
    }

    /// Answers the calls waiting on batches up to `number`.
    fn done(&self, number: u64) {
        self.written.send_replace(number);
    }
}

/// Adds `throttle`'s failures to the shared counts in `store` and refuses
/// the keys the deployment has spent its budget on, until `stop` turns true.
pub(crate) async fn share_failures(
    throttle: Arc<FailureThrottle>,
    store: Arc<dyn Store>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(pending) = throttle.pending() else {
        return;
    };
    loop {
        tokio::select! {
            _ = stop.changed() => {
                // Nobody counts from now on: answer every waiting call.
                pending.done(u64::MAX);
                return;
            }
            () = pending.charged() => {}
        }
        let (batch, failures) = pending.take();
        if failures.is_empty() {
            pending.done(batch);
            continue;
        }
        match store.add_auth_failures(&failures).await {
            Ok(tallies) => {
                for tally in &tallies {
                    if let Some(wait) = refusal(tally, throttle.budget()) {
                        throttle.refuse(&tally.key, wait);
                    }
                }
            }
            Err(err) => tracing::warn!(
                error = %err,
                keys = failures.len(),
                "could not share failed authentications with the other replicas; \
                 this replica's own budget still applies"
            ),
        }
        pending.done(batch);
    }
}

/// How long `tally`'s key must be refused, if the deployment has spent its
/// `budget`: failures in the last minute are estimated as this minute's
/// plus the part of the minute before that the last 60 s still overlap
/// (a sliding window from two fixed ones), and the wait lasts until that
/// estimate falls below the budget, should no failure follow.
fn refusal(tally: &FailureTally, budget: NonZeroU32) -> Option<Duration> {
    let budget = f64::from(budget.get());
    let count = tally.count as f64;
    let previous = tally.previous as f64;
    let elapsed = (tally.elapsed_ms as f64).clamp(0.0, WINDOW_MS);
    let left = WINDOW_MS - elapsed;
    if count + previous * left / WINDOW_MS < budget {
        return None;
    }
    let wait_ms = if count >= budget {
        // Into the next minute, until this one's share of it is small enough.
        left + WINDOW_MS * (1.0 - budget / count)
    } else {
        left - WINDOW_MS * (budget - count) / previous
    };
    let wait = Duration::try_from_secs_f64(wait_ms / 1000.0).unwrap_or_default();
    Some(wait + Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(count: i64, previous: i64, elapsed_ms: i64) -> FailureTally {
        FailureTally {
            key: "peer:10.0.0.1".to_owned(),
            count,
            previous,
            elapsed_ms,
        }
    }

    fn budget(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }

    #[test]
    fn within_the_budget_nothing_is_refused() {
        assert_eq!(refusal(&tally(9, 0, 30_000), budget(10)), None);
        // Half of the last minute's 10 still count: 4 + 5 < 10.
        assert_eq!(refusal(&tally(4, 10, 30_000), budget(10)), None);
    }

    #[test]
    fn a_spent_budget_is_refused_until_the_estimate_falls_below_it() {
        // 10 of 10, 15 s into the minute: the rest of this minute (in the
        // next, the estimate 10 * (1 - elapsed) is below 10 at once).
        let wait = refusal(&tally(10, 0, 15_000), budget(10)).expect("spent");
        assert_eq!(wait, Duration::from_millis(45_001));
        // 20 of 10: half of the next minute too.
        let wait = refusal(&tally(20, 0, 15_000), budget(10)).expect("spent");
        assert_eq!(wait, Duration::from_millis(75_001));
        // 5 now and 10 before, at 15 s: 5 + 7.5 >= 10 until the old
        // minute's share falls to 5, at 30 s.
        let wait = refusal(&tally(5, 10, 15_000), budget(10)).expect("spent");
        assert_eq!(wait, Duration::from_millis(15_001));
    }

    #[test]
    fn a_clock_reading_out_of_range_is_clamped() {
        assert!(refusal(&tally(10, 0, -5), budget(10)).is_some());
        assert_eq!(refusal(&tally(0, 100, 90_000), budget(10)), None);
    }
}
