//! When each stored credential was last accepted, to the minute: noted in
//! memory on the request path, written by a background flush.
//!
//! Why this shape: VerifyBearer is the hot path, and a write per call (or
//! a lock every call shares) would cost more than the lookup itself. A use
//! whose minute is already noted costs a read lock on one of
//! [`SHARDS`] maps (readers do not block each other); only the first use
//! of a credential in a minute takes that shard's write lock. The flush
//! sends every pending use in one statement, which moves a time only
//! forward, so replicas and late flushes agree.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::store::{Result, Store};

/// Milliseconds in the unit `last_used_at` is kept in.
const MINUTE_MS: i64 = 60_000;
/// Maps the credentials are spread over, by the last digit of their id.
const SHARDS: usize = 16;
/// Credentials remembered at most (this minute's and those not yet
/// written): some megabytes at worst.
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Seen {
    /// The minute (of the database clock) last noted.
    minute: i64,
    /// Noted since the last flush.
    pending: bool,
}

impl Seen {
    fn pending(minute: i64) -> Self {
        Self {
            minute,
            pending: true,
        }
    }
}

type Shard = RwLock<HashMap<String, Seen>>;

/// The last-used times noted and not yet written, and this minute's.
pub(crate) struct LastUsed {
    store: Arc<dyn Store>,
    noted: Noted,
}

impl LastUsed {
    /// Remembers at most `capacity` credentials; the uses of others are
    /// dropped (counted) until a flush makes room.
    pub(crate) fn new(store: Arc<dyn Store>, capacity: usize) -> Self {
        Self {
            store,
            noted: Noted::new(capacity),
        }
    }

    /// Notes that the credential `id` was accepted now.
    pub(crate) fn note(&self, id: &str) {
        let minute = self.store.now_ms().div_euclid(MINUTE_MS);
        if !self.noted.note(id, minute) {
            metrics::counter!("tessera_last_used_dropped_total").increment(1);
        }
    }

    /// Writes every pending use in one statement; returns the records
    /// changed. Forgets the minutes that are over. On failure the uses
    /// stay pending, for the next flush.
    pub(crate) async fn flush(&self) -> Result<u64> {
        let minute = self.store.now_ms().div_euclid(MINUTE_MS);
        let uses = self.noted.take(minute);
        if uses.is_empty() {
            return Ok(0);
        }
        metrics::counter!("tessera_last_used_flushes_total").increment(1);
        match self.store.record_last_used(&uses).await {
            Ok(written) => {
                metrics::counter!("tessera_last_used_written_total").increment(written);
                Ok(written)
            }
            Err(err) => {
                let dropped = self.noted.restore(uses);
                metrics::counter!("tessera_last_used_dropped_total").increment(dropped);
                Err(err)
            }
        }
    }
}

/// The minute each credential was last noted in, and whether that is
/// written yet; at most `capacity` credentials.
struct Noted {
    shards: Vec<Shard>,
    remembered: AtomicUsize,
    capacity: usize,
}

impl Noted {
    fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            remembered: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Notes a use of `id` in `minute`; false when it is not remembered
    /// (too many credentials are).
    fn note(&self, id: &str, minute: i64) -> bool {
        let shard = self.shard(id);
        let known = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied();
        if known.is_some_and(|seen| seen.minute >= minute) {
            return true;
        }
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(id) {
            Some(seen) if seen.minute >= minute => {}
            Some(seen) => *seen = Seen::pending(minute),
            None if self.make_room() => {
                map.insert(id.to_owned(), Seen::pending(minute));
            }
            None => return false,
        }
        true
    }

    /// The pending uses, as `(id, start of their minute)`, marked written;
    /// credentials last noted before `minute` are forgotten.
    fn take(&self, minute: i64) -> Vec<(String, i64)> {
        let mut uses = Vec::new();
        for shard in &self.shards {
            let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
            let before = map.len();
            map.retain(|id, seen| {
                if seen.pending {
                    uses.push((id.clone(), seen.minute * MINUTE_MS));
                    seen.pending = false;
                }
                seen.minute >= minute
            });
            self.remembered
                .fetch_sub(before - map.len(), Ordering::Relaxed);
        }
        uses
    }

    /// Makes `uses`, whose write failed, pending again (a use noted since,
    /// of a later minute, wins); returns how many found no room.
    fn restore(&self, uses: Vec<(String, i64)>) -> u64 {
        let mut dropped = 0;
        for (id, at) in uses {
            let minute = at.div_euclid(MINUTE_MS);
            let mut map = self
                .shard(&id)
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            match map.get_mut(&id) {
                Some(seen) if seen.minute > minute => {}
                Some(seen) => seen.pending = true,
                None if self.make_room() => {
                    map.insert(id, Seen::pending(minute));
                }
                None => dropped += 1,
            }
        }
        dropped
    }

    fn shard(&self, id: &str) -> &Shard {
        // Ids end in hex digits of a hash: spread evenly already.
        let last = id.as_bytes().last().copied().unwrap_or(0);
        &self.shards[usize::from(last) % SHARDS]
    }

    /// Counts one more credential remembered, unless that is too many.
    fn make_room(&self) -> bool {
        let before = self.remembered.fetch_add(1, Ordering::Relaxed);
        if before < self.capacity {
            return true;
        }
        self.remembered.fetch_sub(1, Ordering::Relaxed);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::{MINUTE_MS, Noted};

    fn sorted(mut uses: Vec<(String, i64)>) -> Vec<(String, i64)> {
        uses.sort();
        uses
    }

    fn used(id: &str, minute: i64) -> (String, i64) {
        (id.to_owned(), minute * MINUTE_MS)
    }

    #[test]
    fn a_credential_is_pending_once_a_minute() {
        let noted = Noted::new(10);
        assert!(noted.note("usr_a", 5) && noted.note("usr_a", 5) && noted.note("wsa_b", 5));
        assert_eq!(sorted(noted.take(5)), [used("usr_a", 5), used("wsa_b", 5)]);
        assert!(noted.note("usr_a", 5));
        assert!(noted.note("usr_a", 4), "a late reading moves nothing back");
        assert_eq!(noted.take(5), [], "written already this minute");
        assert!(noted.note("usr_a", 6));
        assert_eq!(noted.take(6), [used("usr_a", 6)]);
    }

    #[test]
    fn beyond_the_capacity_uses_are_dropped_until_a_minute_is_over() {
        let noted = Noted::new(2);
        assert!(noted.note("usr_a", 1) && noted.note("usr_b", 1));
        assert!(!noted.note("usr_c", 1), "no room");
        assert!(noted.note("usr_a", 1), "a remembered one is still noted");
        assert_eq!(noted.take(1).len(), 2);
        assert!(!noted.note("usr_c", 1), "this minute's are remembered");
        assert_eq!(noted.take(2), [], "forgotten, nothing pending");
        assert!(noted.note("usr_c", 2), "room again");
    }

    #[test]
    fn uses_whose_write_failed_are_pending_again() {
        let noted = Noted::new(2);
        noted.note("usr_a", 1);
        noted.note("usr_b", 1);
        let failed = noted.take(2);
        assert!(noted.note("usr_b", 2) && noted.note("usr_c", 2));
        assert_eq!(noted.restore(failed), 1, "usr_a found no room");
        assert_eq!(sorted(noted.take(2)), [used("usr_b", 2), used("usr_c", 2)]);
    }
}
