//! Throttling of failed authentication: a peer address, or a presented
//! credential, that keeps failing is refused for a while with
//! `RESOURCE_EXHAUSTED` (how the layer applies each, in `layer.rs`).
//! Callers that do not fail are never slowed: they cost one map lookup.
//!
//! Both maps are bounded. Past [`MAX_TRACKED`] keys they are swept of stale
//! entries at most once a second (see [`Sweeper`]). A map of refusals that
//! is still full of live ones fails open: a new refusal is logged and not
//! recorded, so that key is not refused. Failing closed would let whoever
//! fills the map with made-up credentials have everyone refused; failing
//! open only gives extra guesses at 256-bit secrets.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub(crate) use super::failure_keys::FailureKeys;
use super::shared_failures::{Counted, PendingFailures};
use super::throttle::{MAX_TRACKED, Sweeper, Throttle};

/// A failure charged by [`FailureThrottle::record`].
pub(crate) struct Charge {
    /// How long the peer is refused, when its budget was spent before this
    /// failure: the call is then answered `RESOURCE_EXHAUSTED`.
    pub(crate) peer_refused: Option<Duration>,
    /// Resolves once the failure is counted by every replica, and says
    /// then whether the deployment had spent a key's budget before it (see
    /// [`Counted`]): the call is refused if either says so.
    pub(crate) counted: Counted,
}

/// Which of a call's keys a check or a charge concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The peer's address only.
    Peer,
    /// The presented credential only.
    Credential,
    /// Both.
    Both,
}

/// A budget of authentication failures per key.
pub(crate) struct FailureThrottle {
    limiter: Limiter,
    blocked: Mutex<HashMap<String, Instant>>,
    /// How many keys `blocked` holds, read without its lock: while it holds
    /// none, which is almost always, a call skips the lock and the hashing
    /// of its bearer.
    blocked_keys: AtomicUsize,
    clock: DefaultClock,
    limiter_sweeper: Sweeper,
    blocked_sweeper: Sweeper,
    /// Failures of a refused peer still audited one by one, per peer.
    audits: Throttle,
    /// Time for one failure of budget to come back.
    refill: Duration,
    /// Failures allowed per key and minute.
    budget: NonZeroU32,
    /// Failures still to be added to the counts every replica shares, when
    /// this replica shares them (see `shared_failures.rs`).
    pending: Option<PendingFailures>,
}

/// Ten: how many times its failure budget a minute a refused peer's failed
/// authentications are still audited one by one; beyond, they are only
/// counted (`tessera_auth_failures_unaudited_total`), so that a flood from
/// one address writes a bounded number of audit entries.
const REFUSED_PEER_AUDITS: NonZeroU32 = NonZeroU32::MIN.saturating_add(9);

/// A keyed limiter that reports the budget left after each failure.
type Limiter = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

impl FailureThrottle {
    /// Allows each key `per_minute` failures a minute (in bursts of as
    /// many) before refusing it until the budget refills.
    pub(crate) fn per_minute(per_minute: NonZeroU32) -> Self {
        let quota = Quota::per_minute(per_minute);
        Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            blocked: Mutex::new(HashMap::new()),
            blocked_keys: AtomicUsize::new(0),
            clock: DefaultClock::default(),
            limiter_sweeper: Sweeper::new(),
            blocked_sweeper: Sweeper::new(),
            audits: Throttle::per_minute(per_minute.saturating_mul(REFUSED_PEER_AUDITS)),
            refill: quota.replenish_interval(),
            budget: per_minute,
            pending: None,
        }
    }

    /// The same throttle, also charging every failure to the counts all
    /// replicas share (written by `shared_failures::share_failures`).
    pub(crate) fn shared_across_replicas(mut self) -> Self {
        self.pending = Some(PendingFailures::new());
        self
    }

    /// Failures allowed per key and minute.
    pub(super) fn budget(&self) -> NonZeroU32 {
        self.budget
    }

    /// The failures waiting to be shared, when this replica shares them.
    pub(super) fn pending(&self) -> Option<&PendingFailures> {
        self.pending.as_ref()
    }

    /// How long the caller must wait, if any of its keys in `scope` is
    /// refused now.
    pub(crate) fn blocked(&self, keys: &FailureKeys, scope: Scope) -> Option<Duration> {
        // A refusal recorded while this call arrives may be missed, as it
        // would be had the call arrived a moment earlier.
        if self.blocked_keys.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.refused(keys.resolve(scope).iter())
    }

    /// How long the longest refusal on file of `keys` still lasts, if any.
    fn refused<'a>(&self, keys: impl Iterator<Item = &'a String>) -> Option<Duration> {
        let blocked = self.blocked.lock().ok()?;
        if blocked.is_empty() {
            return None;
        }
        let now = Instant::now();
        keys.filter_map(|key| blocked.get(key))
            .filter_map(|until| until.checked_duration_since(now))
            .max()
    }

    /// True when a failure of a refused peer is still audited one by one
    /// (and spends one of the audits it is allowed).
    pub(crate) fn audit_from_refused_peer(&self, keys: &FailureKeys) -> bool {
        self.audits.check(keys.peer()).is_ok()
    }

    /// Charges one failure to each key in `scope`; a key over budget is
    /// refused until its budget allows another failure. Whether the peer
    /// was over budget is decided here, when the failure is charged, not
    /// when the call arrived: of concurrent failures from one peer, only
    /// its budget's worth are answered as failures, wherever its refusal
    /// stood when they arrived. When failures are shared across replicas,
    /// the call should be answered only once [`Charge::counted`] resolves.
    pub(crate) fn record(&self, keys: &FailureKeys, scope: Scope) -> Charge {
        if self.limiter_sweeper.due(self.limiter.len()) {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let keys = keys.resolve(scope);
        let peer_key = keys.peer.as_ref();
        // Refused by another replica's counts, or by this one's own.
        let mut peer_refused = self.refused(peer_key.into_iter());
        for key in keys.iter() {
            // The failure that spends the last of the budget starts the
            // refusal, so the next attempt is already refused.
            match self.limiter.check_key(key) {
                Ok(state) if state.remaining_burst_capacity() > 0 => {}
                Ok(_) => self.refuse(key, self.refill),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    self.refuse(key, wait);
                    if Some(key) == peer_key {
                        peer_refused = peer_refused.max(Some(wait));
                    }
                }
            }
        }
        let counted = match &self.pending {
            Some(pending) => pending.charge(keys.iter()),
            None => Counted::now(),
        };
        Charge {
            peer_refused,
            counted,
        }
    }

    /// Refuses `key` for `wait` from now (or longer, if it already is).
    pub(super) fn refuse(&self, key: &str, wait: Duration) {
        let Ok(mut blocked) = self.blocked.lock() else {
            return;
        };
        let now = Instant::now();
        if self.blocked_sweeper.due(blocked.len() + 1) {
            blocked.retain(|_, until| *until > now);
            self.blocked_keys.store(blocked.len(), Ordering::Relaxed);
        }
        let until = now + wait;
        // A key already refused is refused for longer, and not logged again.
        if let Some(current) = blocked.get_mut(key).filter(|current| **current > now) {
            *current = until.max(*current);
            return;
        }
        if blocked.len() >= MAX_TRACKED && !blocked.contains_key(key) {
            tracing::warn!(key, "too many refusals on file; this one is not recorded");
            return;
        }
        tracing::warn!(
            key,
            retry_after_ms = super::throttle::millis(wait),
            "too many failed authentications; refusing for a while"
        );
        blocked.insert(key.to_owned(), until);
        self.blocked_keys.store(blocked.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use tessera_client::{Secret, token};

    use super::*;

    #[test]
    fn failures_beyond_the_budget_block_only_that_key() {
        let throttle = FailureThrottle::per_minute(NonZeroU32::MIN.saturating_add(1));
        let a = FailureKeys::new(Some(IpAddr::from([10, 0, 0, 1])), Secret::default());
        let b = FailureKeys::new(Some(IpAddr::from([10, 0, 0, 2])), Secret::default());
        throttle.record(&a, Scope::Both);
        assert_eq!(throttle.blocked(&a, Scope::Both), None, "within budget");
        throttle.record(&a, Scope::Both);
        let wait = throttle.blocked(&a, Scope::Both).expect("over budget");
        assert!(wait <= Duration::from_secs(60));
        assert_eq!(
            throttle.blocked(&b, Scope::Both),
            None,
            "another peer is unaffected"
        );
    }

    #[test]
    fn a_charge_says_whether_the_peer_had_spent_its_budget_before_it() {
        let throttle = FailureThrottle::per_minute(NonZeroU32::MIN.saturating_add(1));
        let peer = FailureKeys::new(Some(IpAddr::from([10, 0, 0, 1])), Secret::default());
        let refused = |_| throttle.record(&peer, Scope::Both).peer_refused.is_some();
        let answers: Vec<bool> = (0..4).map(refused).collect();
        assert_eq!(answers, [false, false, true, true]);
        let credential_only = throttle.record(&peer, Scope::Credential);
        assert_eq!(
            credential_only.peer_refused, None,
            "the peer is not charged"
        );
    }

    #[test]
    fn a_credential_is_keyed_by_128_bits_of_its_hash() {
        let token = token::generate(token::TokenKind::UserAccess);
        let keys = FailureKeys::new(None, token.clone()).resolve(Scope::Credential);
        let id = token::credential_id_of(token.expose()).expect("well-formed");
        let hash = token::sha256_hex(token.expose());
        let expected = format!("credential:{id}{}", &hash[16..32]);
        assert_eq!(
            (keys.peer, keys.credential),
            (None, Some(expected)),
            "the public id alone is only 64 bits"
        );
    }

    #[test]
    fn a_credential_is_blocked_across_peers() {
        let throttle = FailureThrottle::per_minute(NonZeroU32::MIN);
        let revoked = token::generate(token::TokenKind::WorkspaceAuth);
        let first_peer = FailureKeys::new(Some(IpAddr::from([10, 0, 0, 1])), revoked.clone());
        throttle.record(&first_peer, Scope::Both);
        let third_peer = FailureKeys::new(Some(IpAddr::from([10, 0, 0, 3])), revoked);
        assert!(throttle.blocked(&third_peer, Scope::Credential).is_some());
        // Garbage has no credential id: only its peer is charged.
        let garbage = FailureKeys::new(Some(IpAddr::from([10, 0, 0, 4])), Secret::new("x"));
        assert!(throttle.blocked(&garbage, Scope::Both).is_none());
        // Nor has a token that is never a caller's credential.
        let ticket = token::generate(token::TokenKind::Ticket);
        let ticket_keys = FailureKeys::new(None, ticket).resolve(Scope::Credential);
        assert_eq!(ticket_keys.iter().next(), None);
    }
}

#[cfg(test)]
mod refused_peer_tests {
    use std::net::IpAddr;

    use tessera_client::Secret;

    use super::*;

    #[test]
    fn a_refused_peer_has_a_bounded_number_of_audits() {
        let throttle = FailureThrottle::per_minute(NonZeroU32::MIN);
        let peer = FailureKeys::new(Some(IpAddr::from([10, 0, 0, 1])), Secret::default());
        let audited = (0..100)
            .filter(|_| throttle.audit_from_refused_peer(&peer))
            .count();
        assert_eq!(audited, 10, "ten times the failure budget");
        let other = FailureKeys::new(Some(IpAddr::from([10, 0, 0, 2])), Secret::default());
        assert!(throttle.audit_from_refused_peer(&other));
    }
}
