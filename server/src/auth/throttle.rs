//! Per-peer throttling of the RPCs anyone may call (the install-token ones).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::peers::peer_block;

/// Keys a throttle tracks before it sweeps out the stale ones, so a flood
/// of distinct addresses or made-up credentials cannot grow it without
/// bound.
pub(super) const MAX_TRACKED: usize = 65_536;
/// Shortest time between two sweeps of one map: a flood of fresh keys costs
/// one pass over the map per interval, never one per call.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Decides when a map of keys is swept: only once it holds more than its
/// bound, and at most once per interval.
pub(super) struct Sweeper {
    bound: usize,
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Sweeper {
    /// Sweeps past [`MAX_TRACKED`] keys, at most once a second.
    pub(super) fn new() -> Self {
        Self::with(MAX_TRACKED, SWEEP_EVERY)
    }

    fn with(bound: usize, every: Duration) -> Self {
        Self {
            bound,
            every,
            last: Mutex::new(None),
        }
    }

    /// True when a map now holding `len` keys should be swept (and counts
    /// the sweep as done now).
    pub(super) fn due(&self, len: usize) -> bool {
        if len <= self.bound {
            return false;
        }
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        if last.is_some_and(|at| at.elapsed() < self.every) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// A request budget per peer address.
pub(crate) struct Throttle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    sweeper: Sweeper,
}

impl Throttle {
    /// Allows each peer `per_minute` calls a minute, in bursts of as many.
    pub(crate) fn per_minute(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
            sweeper: Sweeper::new(),
        }
    }

    /// Spends one call of `peer`'s budget (an IPv6 peer's /64's: see
    /// `peers.rs`); `Err` carries how long until the next call is allowed.
    /// Callers without an address share one budget.
    pub(crate) fn check(&self, peer: Option<IpAddr>) -> Result<(), Duration> {
        if self.sweeper.due(self.limiter.len()) {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = peer.map_or(IpAddr::from([0, 0, 0, 0]), peer_block);
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// `wait` in whole milliseconds, for logs.
pub(super) fn millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_per_peer() {
        let throttle = Throttle::per_minute(NonZeroU32::MIN.saturating_add(1));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert!(throttle.check(a).is_ok());
        assert!(throttle.check(a).is_ok());
        let wait = throttle.check(a).expect_err("third call in a minute");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
        assert!(throttle.check(b).is_ok(), "another peer is not affected");
    }

    #[test]
    fn an_ipv6_host_has_one_budget_for_its_64() {
        let throttle = Throttle::per_minute(NonZeroU32::MIN);
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(throttle.check(ip("2001:db8:1:2::1")).is_ok());
        assert!(throttle.check(ip("2001:db8:1:2::2")).is_err(), "same /64");
        assert!(throttle.check(ip("2001:db8:1:3::1")).is_ok(), "another /64");
    }

    #[test]
    fn a_full_map_is_swept_at_most_once_per_interval() {
        let sweeper = Sweeper::with(2, Duration::from_secs(60));
        assert!(!sweeper.due(2), "within the bound");
        assert!(sweeper.due(3), "past the bound");
        assert!(!sweeper.due(1_000), "swept a moment ago");
        let eager = Sweeper::with(2, Duration::ZERO);
        assert!(eager.due(3) && eager.due(3), "the interval has passed");
    }
}
