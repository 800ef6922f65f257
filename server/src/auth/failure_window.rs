//! The deployment's failure counts of one key, read as a sliding window
//! of one minute (from two fixed minutes, as `auth_failures` stores them):
//! whether, and for how long, the key is refused, and what budget was left
//! for a replica's batch of its failures.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::store::FailureTally;

/// Length of one counting window, in milliseconds (budgets are per minute).
const WINDOW_MS: f64 = 60_000.0;

/// How much of the deployment's budget of one key was left for a batch's
/// failures of it, and how long the key is refused once they did not fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Verdict {
    pub(super) room: f64,
    pub(super) wait: Duration,
}

/// Failures of `tally`'s key in the last minute, estimated as this
/// minute's plus the part of the minute before that the last 60 s still
/// overlap (a sliding window from two fixed ones); and the milliseconds
/// left of this minute.
fn estimate(tally: &FailureTally) -> (f64, f64) {
    let elapsed = (tally.elapsed_ms as f64).clamp(0.0, WINDOW_MS);
    let left = WINDOW_MS - elapsed;
    (
        tally.count as f64 + tally.previous as f64 * left / WINDOW_MS,
        left,
    )
}

/// What of the `budget` the failures counted before the `batched` ones of
/// `tally`'s key (the last it counts) left them; `wait` is the key's
/// refusal after the batch, if any.
pub(super) fn verdict(
    tally: &FailureTally,
    batched: u32,
    budget: NonZeroU32,
    wait: Option<Duration>,
) -> Verdict {
    let before = estimate(tally).0 - f64::from(batched);
    Verdict {
        room: f64::from(budget.get()) - before,
        wait: wait.unwrap_or(Duration::from_millis(1)),
    }
}

/// How long `tally`'s key must be refused, if the deployment has spent its
/// `budget` (see [`estimate`]): the wait lasts until the estimate falls
/// below the budget, should no failure follow.
pub(super) fn refusal(tally: &FailureTally, budget: NonZeroU32) -> Option<Duration> {
    let budget = f64::from(budget.get());
    let count = tally.count as f64;
    let previous = tally.previous as f64;
    let (estimate, left) = estimate(tally);
    if estimate < budget {
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
    fn a_batch_gets_only_the_budget_left_by_the_failures_before_it() {
        let fit = |tally, batched| {
            let verdict = verdict(&tally, batched, budget(10), None);
            (1..=batched)
                .filter(|place| f64::from(*place) <= verdict.room)
                .count()
        };
        // 10 counted after a batch of 4: 6 before it, so 4 more fit.
        assert_eq!(fit(tally(10, 0, 1_000), 4), 4);
        // 12 after a batch of 5 (another replica's 7 came first): 3 fit.
        assert_eq!(fit(tally(12, 0, 1_000), 5), 3);
        // The budget was spent before the batch: none fits.
        assert_eq!(fit(tally(40, 0, 1_000), 5), 0);
        // Half of the minute before still counts: 2 + 10/2 before, 3 fit.
        assert_eq!(fit(tally(6, 10, 30_000), 4), 3);
    }

    #[test]
    fn a_clock_reading_out_of_range_is_clamped() {
        assert!(refusal(&tally(10, 0, -5), budget(10)).is_some());
        assert_eq!(refusal(&tally(0, 100, 90_000), budget(10)), None);
    }
}
