//! The audit trail: state changes and failed authentications, their
//! texts escaped ([`text::escaped`]) before they are stored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::error::{Error, Result};
use super::principal::Caller;
use super::text;
use crate::store::{AuditDraft, AuditRecord, Store};

/// How a redemption (its credential is in the message) learns, as it
/// refuses, whether to audit the refusal. The caller charges the refusal to
/// its failure budget then, not when the call arrived, so a burst from a
/// refused address is audited only up to a bound however it is timed.
pub(crate) type RefusalAudit<'a> = &'a (dyn Fn(&super::Error) -> bool + Send + Sync);

/// The longest a refused call waits for its audit entry.
const FAILURE_AUDIT_WAIT: Duration = Duration::from_secs(1);

/// Outcome recorded for a success.
pub(super) const OK: &str = "ok";

/// The outcome recorded for `result`: `ok`, or what kind of refusal.
pub(super) fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => OK,
        Err(Error::Unauthenticated(reason)) => reason,
        Err(Error::PermissionDenied(_)) => "permission denied",
        Err(Error::InvalidArgument { .. }) => "invalid argument",
        Err(Error::NotFound(_)) => "not found",
        Err(Error::AlreadyExists(_)) => "already exists",
        Err(Error::FailedPrecondition(_)) => "failed precondition",
        Err(_) => "error",
    }
}

/// Writes audit entries. A failed write is logged and does not fail the
/// call that caused it.
#[derive(Clone)]
pub(crate) struct Auditor {
    store: Arc<dyn Store>,
}

/// What happened, to what, with what result. Never a secret.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event<'a> {
    /// E.g. `ticket.mint`.
    pub action: &'static str,
    /// E.g. a user id or a truncated ticket.
    pub resource: &'a str,
    /// `ok` or a failure reason.
    pub outcome: &'a str,
}

impl Auditor {
    /// Writes to `store`.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Records an event done by an authenticated caller.
    pub(crate) async fn by(&self, caller: &Caller, event: Event<'_>) {
        self.store_entry(self.entry_by(caller, event)).await;
    }

    /// Records an event by a named actor that is not an authenticated caller
    /// (the server at boot, the operator CLI, a newly created admin).
    pub(crate) async fn as_actor(
        &self,
        actor: &str,
        credential_id: &str,
        peer: Option<SocketAddr>,
        event: Event<'_>,
    ) {
        self.write(actor, credential_id, peer, event).await;
    }

    /// Records a failed authentication; `credential_id` is the public id of
    /// what was presented, if it could be computed.
    /// It waits at most [`FAILURE_AUDIT_WAIT`] for the entry: a refusal is
    /// answered (and charged to the failure budget) even while the database
    /// stalls; the entry is written when it answers.
    pub(crate) async fn failed_auth(
        &self,
        credential_id: &str,
        peer: Option<SocketAddr>,
        event: Event<'_>,
    ) {
        let write = self.write("", credential_id, peer, event);
        if tokio::time::timeout(FAILURE_AUDIT_WAIT, write)
            .await
            .is_err()
        {
            ::metrics::counter!("tessera_audit_writes_unawaited_total").increment(1);
        }
    }

    async fn write(
        &self,
        actor: &str,
        credential_id: &str,
        peer: Option<SocketAddr>,
        event: Event<'_>,
    ) {
        self.store_entry(self.entry(actor, credential_id, peer, event))
            .await;
    }

    /// Writes a finished entry (see [`entry_by`] and [`AuditDraft::with_outcome`]).
    pub(crate) async fn store_entry(&self, record: AuditRecord) {
        if let Err(err) = self.store.append_audit(&record).await {
            tracing::error!(error = %err, action = record.action, "audit write failed");
        }
    }
}

impl Auditor {
    /// The entry of an event done by an authenticated caller, for a store call
    /// that writes it with the state change it records.
    pub(crate) fn entry_by(&self, caller: &Caller, event: Event<'_>) -> AuditRecord {
        self.draft_by(caller, event.action, event.resource)
            .with_outcome(&text::escaped(event.outcome))
    }

    /// The entry of an attempt by an authenticated caller whose outcome the
    /// store decides (a ticket's consumption).
    pub(crate) fn draft_by(
        &self,
        caller: &Caller,
        action: &'static str,
        resource: &str,
    ) -> AuditDraft {
        let principal = &caller.principal;
        self.draft(
            principal.actor(),
            &principal.credential_id,
            caller.peer,
            action,
            resource,
        )
    }

    fn entry(
        &self,
        actor: &str,
        credential_id: &str,
        peer: Option<SocketAddr>,
        event: Event<'_>,
    ) -> AuditRecord {
        self.draft(actor, credential_id, peer, event.action, event.resource)
            .with_outcome(&text::escaped(event.outcome))
    }

    /// Every text is stored escaped ([`text::escaped`]): a resource may hold
    /// whatever a refused request carried, and an unprintable character would
    /// garble or forge what an auditor reads (PostgreSQL even refuses NUL, and
    /// the entry would be lost). The peer is an address, written out here
    /// and only here (empty when unknown), so that calls which audit nothing
    /// never format one.
    fn draft(
        &self,
        actor: &str,
        credential_id: &str,
        peer: Option<SocketAddr>,
        action: &'static str,
        resource: &str,
    ) -> AuditDraft {
        AuditDraft {
            at: self.store.now_ms(),
            actor: text::escaped(actor).into_owned(),
            action: text::escaped(action).into_owned(),
            resource: text::escaped(resource).into_owned(),
            credential_id: text::escaped(credential_id).into_owned(),
            peer: peer.map(|addr| addr.to_string()).unwrap_or_default(),
        }
    }
}
