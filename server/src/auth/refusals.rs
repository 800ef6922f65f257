//! A refusal charged to the failure budget as it is made, not when its call
//! arrived: whoever refuses (the layer for a bearer, the handler for a
//! redemption, whose credential is in the message) learns at that moment
//! whether the peer had spent its budget, and so whether to audit the
//! refusal (a refused peer's refusals are audited only up to a bound).

use std::sync::{Arc, Mutex, PoisonError};

use super::failures::{Charge, FailureKeys, FailureThrottle, Scope};
use crate::domain::Error;

/// Charges a refusal to the keys of `keys` in `scope` when `chargeable`,
/// and says whether to audit it: yes, unless the peer had spent its budget
/// before (or, uncharged, is refused now) and its audited failures too.
pub(super) fn charge(
    failures: &FailureThrottle,
    keys: &FailureKeys,
    scope: Scope,
    chargeable: bool,
) -> (bool, Option<Charge>) {
    let (refused, charge) = if chargeable {
        let charge = failures.record(keys, scope);
        (charge.peer_refused.is_some(), Some(charge))
    } else {
        (failures.blocked(keys, Scope::Peer).is_some(), None)
    };
    (!refused || failures.audit_from_refused_peer(keys), charge)
}

/// The charge of a redemption's refusal, which its handler makes: the auth
/// layer puts one in the request's extensions.
#[derive(Clone)]
pub(crate) struct RefusalCharge(Arc<Inner>);

struct Inner {
    failures: Arc<FailureThrottle>,
    keys: FailureKeys,
    charged: Mutex<Option<Charge>>,
}

impl RefusalCharge {
    /// The charge of a redemption with `keys` (its peer's).
    pub(super) fn new(failures: Arc<FailureThrottle>, keys: FailureKeys) -> Self {
        Self(Arc::new(Inner {
            failures,
            keys,
            charged: Mutex::new(None),
        }))
    }

    /// The redemption was refused with `err`: charged to its peer when the
    /// caller is at fault. Says whether to audit the refusal.
    pub(crate) fn audit_refusal(&self, err: &Error) -> bool {
        let Inner {
            failures,
            keys,
            charged,
        } = &*self.0;
        let (audit, charge) = charge(failures, keys, Scope::Peer, err.is_callers_fault());
        *charged.lock().unwrap_or_else(PoisonError::into_inner) = charge;
        audit
    }

    /// The charge made, if one was.
    pub(super) fn take(&self) -> Option<Charge> {
        self.0
            .charged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
