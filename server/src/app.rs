//! The transport-free service: every RPC as a method on [`Tessera`], with
//! auditing. The gRPC adapter only decodes, calls and converts.

use std::sync::Arc;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use crate::audit::{Auditor, Event};
use crate::bearer::Verifier;
use crate::error::{Error, Result};
use crate::internal::InternalCredentials;
use crate::principal::{Caller, Principal};
use crate::service_bearer::ServiceSecrets;
use crate::store::Store;
use crate::tickets::{MintedTicket, TicketIdentity, TicketPolicy, TicketRequest, Tickets};

/// Tessera's domain logic over a store.
pub struct Tessera {
    verifier: Verifier,
    tickets: Tickets,
    internal: Arc<InternalCredentials>,
    audit: Auditor,
}

/// Outcome text recorded for a success.
const OK: &str = "ok";

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
            audit: Auditor::new(store),
        }
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
            self.audit_failed_auth("bearer.verify", "", bearer, &caller.peer, err)
                .await;
        }
        result
    }

    /// MintTicket.
    pub async fn mint_ticket(
        &self,
        caller: &Caller,
        request: &TicketRequest,
    ) -> Result<MintedTicket> {
        let minted = self.tickets.mint(&caller.principal, request).await?;
        let resource = format!("user:{}/{}", request.provider, request.user_id);
        let event = Event {
            action: "ticket.mint",
            resource: &resource,
            outcome: OK,
        };
        self.audit.by(caller, event).await;
        Ok(minted)
    }

    /// ConsumeTicket.
    pub async fn consume_ticket(
        &self,
        caller: &Caller,
        ticket: &str,
        purpose: &str,
    ) -> Result<TicketIdentity> {
        let result = self.tickets.consume(ticket, purpose).await;
        let outcome = match &result {
            Ok(_) => OK,
            Err(Error::Ticket { reason, .. }) => reason.reason(),
            Err(_) => "error",
        };
        let resource = token::truncated(ticket);
        let event = Event {
            action: "ticket.consume",
            resource: &resource,
            outcome,
        };
        self.audit.by(caller, event).await;
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
        self.tickets.reap().await
    }

    async fn audit_failed_auth(
        &self,
        action: &'static str,
        resource: &str,
        bearer: &str,
        peer: &str,
        err: &Error,
    ) {
        let outcome = match err {
            Error::Unauthenticated(reason) => reason,
            _ => "error",
        };
        // Only a well-formed token gets an id: hashing arbitrary input into
        // the log would let a caller fill it with chosen values.
        let credential_id = match token::parse(bearer) {
            Ok(kind) => token::credential_id(kind.tag(), bearer),
            Err(_) => String::new(),
        };
        let event = Event {
            action,
            resource,
            outcome,
        };
        self.audit.failed_auth(&credential_id, peer, event).await;
    }
}
