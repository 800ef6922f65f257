//! Per-peer throttling of the RPCs anyone may call (the install-token ones).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Peers tracked before idle ones are forgotten, so a flood of distinct
/// addresses cannot grow the limiter without bound.
const MAX_TRACKED_PEERS: usize = 65_536;

/// A request budget per peer address.
pub(crate) struct Throttle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Throttle {
    /// Allows each peer `per_minute` calls a minute, in bursts of as many.
    pub(crate) fn per_minute(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one call of `peer`'s budget; `Err` carries how long until the
    /// next call is allowed. Callers without an address share one budget.
    pub(crate) fn check(&self, peer: Option<IpAddr>) -> Result<(), Duration> {
        if self.limiter.len() > MAX_TRACKED_PEERS {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
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
}
