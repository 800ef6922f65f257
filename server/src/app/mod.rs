//! The transport-free service: every RPC as a method on [`Tessera`], with
//! auditing. The gRPC adapter only decodes, calls and converts.
//!
//! The install-token and workspace RPCs live in `install.rs` and
//! `workspaces.rs` beside this file.

mod install;
mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use crate::audit::{self, Auditor, Event, OK};
use crate::bearer::Verifier;
use crate::error::{Error, Result};
use crate::install::Install;
use crate::internal::InternalCredentials;
use crate::metrics;
use crate::principal::{Caller, Principal};
use crate::service_bearer::ServiceSecrets;
use crate::store::Store;
use crate::tickets::{
    ConsumeAudit, MintedTicket, TicketIdentity, TicketPolicy, TicketRequest, Tickets,
};
use crate::workspaces::Workspaces;

/// Tessera's domain logic over a store.
pub struct Tessera {
    verifier: Verifier,
    tickets: Tickets,
    internal: Arc<InternalCredentials>,
    install: Install,
    workspaces: Workspaces,
    audit: Auditor,
}

/// Counter of ticket events.
const TICKETS: &str = "tessera_tickets_total";
/// Counter of install-token events.
const INSTALL: &str = "tessera_install_token_events_total";
/// Counter of workspace events.
const WORKSPACES: &str = "tessera_workspace_events_total";

impl Tessera {
    /// Wires the domain together.
    pub fn new(
        store: Arc<dyn Store>,
        secrets: ServiceSecrets,
        policy: TicketPolicy,
        internal: Arc<InternalCredentials>,
    ) -> Self {
        Self {
            verifier: Verifier::new(secrets, store.clone(), internal.clone()),
            tickets: Tickets::new(store.clone(), policy, internal.clone()),
            internal,
            install: Install::new(store.clone()),
            workspaces: Workspaces::new(store.clone()),
            audit: Auditor::new(store),
        }
    }

    /// For operator commands (`tessera install-token …`): no service
    /// secrets, and an internal credential that is never minted.
    pub fn offline(store: Arc<dyn Store>) -> Self {
        let internal = Arc::new(InternalCredentials::new(store.clone(), Duration::ZERO));
        Self::new(
            store,
            ServiceSecrets::default(),
            TicketPolicy::default(),
            internal,
        )
    }

    /// Seeds the synthetic user of every configured service.
    pub async fn seed_service_users(&self) {
        self.verifier.seed_service_users().await;
    }

    /// Authenticates a caller's bearer for the RPC at `path`; a failure is
    /// audited.
    pub async fn authenticate(&self, bearer: &str, path: &str, peer: &str) -> Result<Principal> {
        let result = self.verifier.verify(bearer).await;
        if let Err(err) = &result {
            self.audit_failed_auth("caller.authenticate", path, bearer, peer, err)
                .await;
        }
        result
    }

    /// Authenticates a workspace runtime by its registration or auth token
    /// (RegisterWorkspace only); a failure is audited.
    pub async fn authenticate_registrant(
        &self,
        bearer: &str,
        path: &str,
        peer: &str,
    ) -> Result<Principal> {
        let result = self.workspaces.registrant(bearer).await;
        if let Err(err) = &result {
            self.audit_failed_auth("caller.authenticate", path, bearer, peer, err)
                .await;
        }
        result
    }

    /// Records that an authenticated caller lacks the right for `path`.
    pub async fn audit_denied(&self, caller: &Caller, path: &str) {
        let event = Event {
            action: "caller.authorize",
            resource: path,
            outcome: "permission denied",
        };
        self.audit.by(caller, event).await;
    }

    /// VerifyBearer: the principal `bearer` authenticates.
    pub async fn verify_bearer(&self, caller: &Caller, bearer: &str) -> Result<Principal> {
        let result = self.verifier.verify(bearer).await;
        if let Err(err) = &result {
            // The actor is the service that relayed the token; the resource
            // is the token that failed (its public id, when it has one).
            let outcome = failure_reason(err);
            let presented = token::credential_id_of(bearer).unwrap_or_default();
            let event = Event {
                action: "bearer.verify",
                resource: &presented,
                outcome,
            };
            self.audit.by(caller, event).await;
        }
        result
    }

    /// MintTicket.
    pub async fn mint_ticket(
        &self,
        caller: &Caller,
        request: &TicketRequest,
    ) -> Result<MintedTicket> {
        let resource = format!("user:{}/{}", request.provider, request.user_id);
        let event = Event {
            action: "ticket.mint",
            resource: &resource,
            outcome: OK,
        };
        // Written with the ticket, in one transaction.
        let entry = audit::entry_by(caller, event);
        let minted = self
            .tickets
            .mint(&caller.principal, request, &entry)
            .await?;
        metrics::event(TICKETS, "minted");
        Ok(minted)
    }

    /// ConsumeTicket.
    pub async fn consume_ticket(
        &self,
        caller: &Caller,
        ticket: &str,
        purpose: &str,
    ) -> Result<TicketIdentity> {
        // The ticket's public id: unlike its first characters (always
        // `tsr_tkt_`), it tells one ticket from another in the audit log.
        let resource = token::credential_id_of(ticket).unwrap_or_else(|| token::truncated(ticket));
        let caller = caller.clone();
        let audit: ConsumeAudit = Arc::new(move |outcome| {
            let event = Event {
                action: "ticket.consume",
                resource: &resource,
                outcome,
            };
            audit::entry_by(&caller, event)
        });
        let result = self.tickets.consume(ticket, purpose, audit).await;
        match &result {
            Ok(identity) if identity.internal => metrics::event(TICKETS, "internal_accepted"),
            Ok(_) => metrics::event(TICKETS, "consumed"),
            Err(Error::Ticket { reason, .. }) => metrics::event(TICKETS, reason.metric()),
            Err(_) => {}
        }
        result
    }

    /// GetInternalCredential.
    pub async fn internal_credential(&self, caller: &Caller) -> Result<Secret> {
        let credential = self.internal.get_or_mint().await?;
        let id = token::credential_id(TokenKind::Internal.tag(), credential.expose());
        let event = Event {
            action: "internal_credential.get",
            resource: &id,
            outcome: OK,
        };
        self.audit.by(caller, event).await;
        Ok(credential)
    }

    /// Deletes expired tickets; returns how many.
    pub async fn reap_tickets(&self) -> Result<u64> {
        let reaped = self.tickets.reap().await?;
        ::metrics::counter!(TICKETS, "event" => "expired_reaped").increment(reaped);
        Ok(reaped)
    }

    async fn audit_failed_auth(
        &self,
        action: &'static str,
        resource: &str,
        bearer: &str,
        peer: &str,
        err: &Error,
    ) {
        let outcome = failure_reason(err);
        let credential_id = token::credential_id_of(bearer).unwrap_or_default();
        let event = Event {
            action,
            resource,
            outcome,
        };
        self.audit.failed_auth(&credential_id, peer, event).await;
    }
}

/// The audit outcome of a failed verification; counted by reason.
fn failure_reason(err: &Error) -> &'static str {
    let reason = match err {
        Error::Unauthenticated(reason) => reason,
        _ => "error",
    };
    ::metrics::counter!("tessera_auth_failures_total", "reason" => reason).increment(1);
    reason
}
