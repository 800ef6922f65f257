//! Who the caller of an RPC is, and whether the policy table lets it call:
//! the transport-free half of [`super::AuthLayer`]. Refusals are audited.

use std::net::SocketAddr;
use std::sync::Arc;

use tessera_client::token;

use super::policy::{self, Rule};
use super::verify::{Verifier, failure_reason};
use crate::domain::{Auditor, Caller, Error, Event};

/// Why a call was refused before its handler ran.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The caller's own credential failed (charged to the failure throttle).
    Unauthenticated(Error),
    /// The credential could not be checked (the database is unavailable,
    /// say): the caller did nothing wrong, so nothing is charged.
    Unverified(Error),
    /// The caller is known but may not call this RPC.
    PermissionDenied,
}

/// Authenticates callers and applies the policy table.
pub(crate) struct Authenticator {
    verifier: Arc<Verifier>,
    audit: Auditor,
}

impl Authenticator {
    pub(crate) fn new(verifier: Arc<Verifier>, audit: Auditor) -> Self {
        Self { verifier, audit }
    }

    /// The caller presenting `bearer` from `peer`, if `rule` admits it for
    /// the RPC at `path`. When the bearer fails, `audit` is told why, at
    /// once, and says whether the failure is audited (else it is counted).
    pub(crate) async fn caller(
        &self,
        rule: Rule,
        bearer: &str,
        path: &str,
        peer: Option<SocketAddr>,
        audit: impl FnOnce(&Error) -> bool,
    ) -> Result<Caller, Refusal> {
        let principal = match self.verifier.caller(bearer).await {
            Ok(principal) => principal,
            Err(err) => {
                if audit(&err) {
                    self.audit_failure(path, bearer, peer, &err).await;
                } else {
                    metrics::counter!("tessera_auth_failures_unaudited_total").increment(1);
                }
                return Err(match err {
                    Error::Unauthenticated(_) => Refusal::Unauthenticated(err),
                    err => Refusal::Unverified(err),
                });
            }
        };
        let caller = Caller { principal, peer };
        if policy::allows(rule, &caller.principal) {
            return Ok(caller);
        }
        let event = Event {
            action: "caller.authorize",
            resource: path,
            outcome: "permission denied",
        };
        self.audit.by(&caller, event).await;
        Err(Refusal::PermissionDenied)
    }

    async fn audit_failure(&self, path: &str, bearer: &str, peer: Option<SocketAddr>, err: &Error) {
        let credential_id = token::credential_id_of(bearer).unwrap_or_default();
        let event = Event {
            action: "caller.authenticate",
            resource: path,
            outcome: failure_reason(err),
        };
        self.audit.failed_auth(&credential_id, peer, event).await;
    }
}
