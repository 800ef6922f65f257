//! The failure budget of redemptions, the anonymous RPCs whose credential
//! is in the message (ConsumeInstallToken, AcceptInvite): their handler
//! judges the credential and audits a refusal, so the refusal is charged to
//! the peer as the handler refuses, and the handler learns then whether to
//! audit it (a refused peer's refusals are audited only up to a bound).

use std::sync::{Arc, Mutex, PoisonError};

use super::failures::{Charge, FailureKeys, FailureThrottle, Scope};
use crate::domain::Error;

/// Put in a redemption's request extensions by the auth layer; the handler
/// calls [`RedemptionCharge::audit_refusal`] when it refuses.
#[derive(Clone)]
pub(crate) struct RedemptionCharge(Arc<Inner>);

struct Inner {
    failures: Arc<FailureThrottle>,
    keys: FailureKeys,
    charged: Mutex<Option<Charge>>,
}

impl RedemptionCharge {
    pub(super) fn new(failures: Arc<FailureThrottle>, keys: FailureKeys) -> Self {
        Self(Arc::new(Inner {
            failures,
            keys,
            charged: Mutex::new(None),
        }))
    }

    /// Charges a refusal for what the caller sent to its peer, and says
    /// whether to audit it: yes, unless the peer had spent its budget before
    /// and its audited failures too.
    pub(crate) fn audit_refusal(&self, err: &Error) -> bool {
        let Inner {
            failures,
            keys,
            charged,
        } = &*self.0;
        let refused = if err.is_callers_fault() {
            let charge = failures.record(keys, Scope::Peer);
            let refused = charge.peer_refused.is_some();
            *charged.lock().unwrap_or_else(PoisonError::into_inner) = Some(charge);
            refused
        } else {
            failures.blocked(keys, Scope::Peer).is_some()
        };
        !refused || failures.audit_from_refused_peer(keys)
    }

    /// The charge the handler made, if it made one.
    pub(super) fn take(&self) -> Option<Charge> {
        self.0
            .charged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
