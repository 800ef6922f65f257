//! Time as Unix milliseconds, the unit stored in the database, read from
//! one source for every replica: the database's clock. Each process keeps
//! its offset from the database (measured at connection and by every
//! health ping, half the round trip taken as the reading's moment) and
//! adds it to its own clock, so that expiries and heartbeats written by
//! one replica mean the same to every other, whatever their clocks say.
//! SQLite has no clock of its own: the process's clock is the database's.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A reading whose round trip took longer than this says too little about
/// when it was taken; it is ignored (and the last offset kept).
const MAX_ROUND_TRIP_MS: i64 = 250;
/// Shortest time between two warnings about ignored readings.
const WARN_EVERY_MS: i64 = 60_000;

/// The database's time, as this process estimates it.
#[derive(Clone, Debug, Default)]
pub struct DatabaseClock {
    offsets: Arc<Offsets>,
}

#[derive(Debug, Default)]
struct Offsets {
    /// Added to the system clock, for tests of skewed replicas.
    skew_ms: i64,
    /// The database's clock minus this process's.
    to_database_ms: AtomicI64,
    /// When (local ms) a reading was last ignored with a warning.
    warned_at_ms: AtomicI64,
}

impl DatabaseClock {
    /// A clock whose process reads its own clock `skew_ms` off (negative:
    /// behind), as a machine with a wrong clock would.
    pub fn skewed(skew_ms: i64) -> Self {
        Self {
            offsets: Arc::new(Offsets {
                skew_ms,
                ..Offsets::default()
            }),
        }
    }

    /// The database's time now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let offset = self.offsets.to_database_ms.load(Ordering::Relaxed);
        self.local_ms().saturating_add(offset)
    }

    /// This process's own clock, in Unix milliseconds (0 before the epoch).
    pub(crate) fn local_ms(&self) -> i64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        system.saturating_add(self.offsets.skew_ms)
    }

    /// Takes `database_ms`, read by a query sent at local time `sent_ms`
    /// whose answer came at `received_ms`, as the database's time half-way.
    pub(crate) fn observe(&self, sent_ms: i64, database_ms: i64, received_ms: i64) {
        let round_trip = received_ms.saturating_sub(sent_ms);
        if !(0..=MAX_ROUND_TRIP_MS).contains(&round_trip) {
            self.warn_ignored(round_trip, received_ms);
            return;
        }
        let midpoint = sent_ms.saturating_add(round_trip / 2);
        let offset = database_ms.saturating_sub(midpoint);
        self.offsets.to_database_ms.store(offset, Ordering::Relaxed);
    }
}

impl DatabaseClock {
    /// Says, at most once a minute, that the offset could not be renewed:
    /// until it can, this process keeps the last one (none at all if it
    /// never had a good reading, and then trusts its own clock).
    fn warn_ignored(&self, round_trip_ms: i64, now_ms: i64) {
        let last = self.offsets.warned_at_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < WARN_EVERY_MS {
            return;
        }
        self.offsets.warned_at_ms.store(now_ms, Ordering::Relaxed);
        let offset_ms = self.offsets.to_database_ms.load(Ordering::Relaxed);
        tracing::warn!(
            round_trip_ms,
            offset_ms,
            "the database's clock could not be read precisely; keeping the last offset"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_sets_the_offset_to_the_database() {
        let clock = DatabaseClock::skewed(-600_000);
        let local = clock.local_ms();
        clock.observe(local, local + 600_000 + 5, local + 10);
        let off = clock.now_ms() - clock.local_ms();
        assert_eq!(
            off, 600_000,
            "the database's time half-way through the query"
        );
    }

    #[test]
    fn a_slow_or_backwards_reading_is_ignored() {
        let clock = DatabaseClock::default();
        clock.observe(1_000, 999_999, 1_000 + MAX_ROUND_TRIP_MS + 1);
        clock.observe(1_000, 999_999, 999);
        let off = clock.now_ms() - clock.local_ms();
        assert!(off.abs() <= 1, "offset unchanged: {off}");
    }
}
