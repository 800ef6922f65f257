//! Failure budgets that hold across replicas: on PostgreSQL each replica
//! adds its failed authentications to counters in the database (a count per
//! key and minute, written in batches off the request path) and refuses a
//! key as soon as the deployment as a whole has spent its budget.
//!
//! A replica still keeps its own in-memory budget (`failures.rs`), so a
//! database that cannot be reached leaves each replica its own budget
//! rather than none. A failed call is answered only once its failure is
//! counted, and from that count: the database adds each replica's batch in
//! one statement and returns the key's total, so the failures before the
//! batch are known, and only the batch's first failures that still fit in
//! the budget are answered as failures; the rest are refused. Concurrent
//! bursts at several replicas thus share one budget too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::failure_window::{Verdict, refusal, verdict};
use super::failures::FailureThrottle;
use super::throttle::MAX_TRACKED;
use crate::store::Store;

/// The longest a failed call waits for its failure to be counted.
const COUNT_WAIT: Duration = Duration::from_secs(1);

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
    verdicts: Arc<Verdicts>,
}

/// What the shared counts said of a batch's keys, once it is written: set
/// only when the write succeeded.
type Verdicts = OnceLock<HashMap<String, Verdict>>;

/// Resolves once a failure has been counted by every replica's budget, or
/// after [`COUNT_WAIT`] if the database is slow to say so.
pub(crate) struct Counted(Option<Waiting>);

/// A failure waiting for its batch to be written.
struct Waiting {
    written: watch::Receiver<u64>,
    batch: u64,
    verdicts: Arc<Verdicts>,
    /// Each key charged, and this failure's place among the batch's
    /// failures of that key (1 for the first).
    places: Vec<(String, u32)>,
}

impl Counted {
    /// Nothing to wait for (failures are not shared).
    pub(super) fn now() -> Self {
        Self(None)
    }

    /// Waits until the failure is counted, and says how long the caller is
    /// refused when the deployment had spent a key's budget before this
    /// failure (`None` as well when the count could not be had in time).
    pub(crate) async fn wait(self) -> Option<Duration> {
        let Waiting {
            mut written,
            batch,
            verdicts,
            places,
        } = self.0?;
        let counted = written.wait_for(|last| *last >= batch);
        tokio::time::timeout(COUNT_WAIT, counted).await.ok()?.ok()?;
        let verdicts = verdicts.get()?;
        places
            .iter()
            .filter_map(|(key, place)| {
                let verdict = verdicts.get(key)?;
                (f64::from(*place) > verdict.room).then_some(verdict.wait)
            })
            .max()
    }
}

impl PendingFailures {
    pub(super) fn new() -> Self {
        Self {
            batch: Mutex::new(Batch {
                number: 1,
                counts: HashMap::new(),
                verdicts: Arc::default(),
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
        let mut places = Vec::with_capacity(2);
        for key in keys {
            if let Some(count) = batch.counts.get_mut(key) {
                *count = count.saturating_add(1);
                places.push((key.clone(), *count));
            } else if batch.counts.len() < MAX_TRACKED {
                batch.counts.insert(key.clone(), 1);
                places.push((key.clone(), 1));
            }
        }
        let waiting = Waiting {
            written: self.written.subscribe(),
            batch: batch.number,
            verdicts: batch.verdicts.clone(),
            places,
        };
        drop(batch);
        self.wake.notify_one();
        Counted(Some(waiting))
    }

    /// Waits until a failure is charged.
    async fn charged(&self) {
        self.wake.notified().await;
    }

    /// The batch filled so far, its number and where its verdicts go; the
    /// next charge goes to a new one.
    fn take(&self) -> (u64, HashMap<String, u32>, Arc<Verdicts>) {
        let Ok(mut batch) = self.batch.lock() else {
            return (0, HashMap::new(), Arc::default());
        };
        let number = batch.number;
        batch.number += 1;
        let counts = std::mem::take(&mut batch.counts);
        (number, counts, std::mem::take(&mut batch.verdicts))
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
        let (batch, counts, verdicts) = pending.take();
        if counts.is_empty() {
            pending.done(batch);
            continue;
        }
        let failures: Vec<(String, u32)> = counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
        match store.add_auth_failures(&failures).await {
            Ok(tallies) => {
                let mut decided = HashMap::with_capacity(tallies.len());
                for tally in &tallies {
                    let wait = refusal(tally, throttle.budget());
                    if let Some(wait) = wait {
                        throttle.refuse(&tally.key, wait);
                    }
                    let batched = counts.get(&tally.key).copied().unwrap_or_default();
                    let verdict = verdict(tally, batched, throttle.budget(), wait);
                    decided.insert(tally.key.clone(), verdict);
                }
                let _ = verdicts.set(decided);
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
