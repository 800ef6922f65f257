//! The transport-free service: every RPC as a method on [`Tessera`], with
//! auditing. The gRPC adapter only decodes, calls and converts.

use std::sync::Arc;
use std::time::Duration;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use crate::audit::{Auditor, Event};
use crate::bearer::Verifier;
use crate::error::{Error, Result};
use crate::install::{FirstAdmin, Install, InstallStatus};
use crate::internal::InternalCredentials;
use crate::metrics;
use crate::principal::{Caller, Principal, PrincipalKind};
use crate::service_bearer::ServiceSecrets;
use crate::store::Store;
use crate::tickets::{MintedTicket, TicketIdentity, TicketPolicy, TicketRequest, Tickets};
use crate::workspaces::{Provisioned, Registration, Workspaces};

/// Tessera's domain logic over a store.
pub struct Tessera {
    verifier: Verifier,
    tickets: Tickets,
    internal: Arc<InternalCredentials>,
    install: Install,
    workspaces: Workspaces,
    audit: Auditor,
}

/// Outcome text recorded for a success.
const OK: &str = "ok";
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
        let policy = TicketPolicy {
            default_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(300),
        };
        Self::new(store, ServiceSecrets::default(), policy, internal)
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
        metrics::event(TICKETS, "minted");
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
            Ok(identity) if identity.internal => {
                metrics::event(TICKETS, "internal_accepted");
                OK
            }
            Ok(_) => {
                metrics::event(TICKETS, "consumed");
                OK
            }
            Err(Error::Ticket { reason, .. }) => {
                metrics::event(TICKETS, reason.metric());
                reason.reason()
            }
            Err(_) => "error",
        };
        // The ticket's public id: unlike its first characters (always
        // `tsr_tkt_`), it tells one ticket from another in the audit log.
        let resource = token::credential_id_of(ticket).unwrap_or_else(|| token::truncated(ticket));
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

    /// At boot: mints the install token if nobody can log in yet and none
    /// is on file; returns it for the banner.
    pub async fn mint_install_token_at_boot(&self) -> Result<Option<Secret>> {
        let minted = self.install.mint_if_needed().await?;
        if let Some(token) = &minted {
            self.audit_install_issue("boot", "", "", token).await;
        }
        Ok(minted)
    }

    /// IssueInstallToken: with `force`, always a fresh token (while nobody
    /// can log in); otherwise one only when none is on file. A SERVICE
    /// caller never sees the token: it goes to the server's standard output
    /// like the boot banner, because a service that could trade it for the
    /// first admin's access token would hold a credential that outlives its
    /// own secret (seed 001).
    pub async fn issue_install_token(
        &self,
        caller: &Caller,
        force: bool,
    ) -> Result<(Option<Secret>, InstallStatus)> {
        let minted = if force {
            Some(self.install.regenerate().await?)
        } else {
            self.install.mint_if_needed().await?
        };
        if let Some(token) = &minted {
            let principal = &caller.principal;
            self.audit_install_issue(
                principal.actor(),
                &principal.credential_id,
                &caller.peer,
                token,
            )
            .await;
        }
        let status = self.install.status().await?;
        match minted {
            Some(token) if caller.principal.kind == PrincipalKind::Service => {
                crate::install::print_banner(&token);
                Ok((None, status))
            }
            minted => Ok((minted, status)),
        }
    }

    /// GetInstallTokenStatus.
    pub async fn install_token_status(&self) -> Result<InstallStatus> {
        self.install.status().await
    }

    /// ConsumeInstallToken: creates the first admin; audited either way.
    pub async fn consume_install_token(
        &self,
        peer: &str,
        presented: &str,
        email: &str,
        name: &str,
    ) -> Result<FirstAdmin> {
        let result = self.install.consume(presented, email, name).await;
        metrics::event(
            INSTALL,
            if result.is_ok() {
                "consumed"
            } else {
                "refused"
            },
        );
        let outcome = match &result {
            Ok(_) => OK,
            Err(Error::Unauthenticated(reason)) => reason,
            Err(Error::FailedPrecondition(_)) => "first admin exists",
            Err(Error::InvalidArgument { .. }) => "invalid argument",
            Err(_) => "error",
        };
        let credential_id = token::credential_id_of(presented).unwrap_or_default();
        let resource = match &result {
            Ok(admin) => format!("user:{}", admin.user.id),
            Err(_) => String::new(),
        };
        let event = Event {
            action: "install_token.consume",
            resource: &resource,
            outcome,
        };
        match &result {
            Ok(admin) => {
                self.audit
                    .as_actor(&admin.user.email, &credential_id, peer, event)
                    .await
            }
            Err(_) => self.audit.failed_auth(&credential_id, peer, event).await,
        }
        result
    }

    /// `tessera install-token regenerate`: a fresh token, replacing any.
    pub async fn regenerate_install_token(&self, actor: &str) -> Result<Secret> {
        let token = self.install.regenerate().await?;
        self.audit_install_issue(actor, "", "", &token).await;
        Ok(token)
    }

    async fn audit_install_issue(
        &self,
        actor: &str,
        credential_id: &str,
        peer: &str,
        token: &Secret,
    ) {
        metrics::event(INSTALL, "issued");
        let id = token::credential_id(TokenKind::Install.tag(), token.expose());
        let event = Event {
            action: "install_token.issue",
            resource: &id,
            outcome: OK,
        };
        self.audit.as_actor(actor, credential_id, peer, event).await;
    }

    /// ProvisionWorkspace.
    pub async fn provision_workspace(
        &self,
        caller: &Caller,
        workspace_id: &str,
        name: &str,
    ) -> Result<Provisioned> {
        let provisioned = self.workspaces.provision(workspace_id, name).await?;
        metrics::event(WORKSPACES, "provisioned");
        let resource = workspace_resource(workspace_id);
        let event = Event {
            action: "workspace.provision",
            resource: &resource,
            outcome: OK,
        };
        self.audit.by(caller, event).await;
        Ok(provisioned)
    }

    /// RegisterWorkspace: audited as a registration, and as a rotation
    /// when it replaced the auth token.
    pub async fn register_workspace(
        &self,
        caller: &Caller,
        workspace_id: &str,
        reissue_auth_token: bool,
    ) -> Result<Registration> {
        let result = self
            .workspaces
            .register(&caller.principal, workspace_id, reissue_auth_token)
            .await;
        let resource = workspace_resource(workspace_id);
        let outcome = match &result {
            Ok(_) => OK,
            Err(Error::PermissionDenied(_)) => "permission denied",
            Err(Error::NotFound(_)) => "not found",
            Err(_) => "error",
        };
        if result.is_ok() {
            metrics::event(WORKSPACES, "registered");
        }
        let event = Event {
            action: "workspace.register",
            resource: &resource,
            outcome,
        };
        self.audit.by(caller, event).await;
        if matches!(&result, Ok(registration) if registration.rotated) {
            metrics::event(WORKSPACES, "auth_token_rotated");
            let event = Event {
                action: "workspace.rotate_auth_token",
                resource: &resource,
                outcome,
            };
            self.audit.by(caller, event).await;
        }
        result
    }

    /// GetInboundSecret.
    pub async fn inbound_secret(&self, workspace_id: &str) -> Result<Option<Secret>> {
        self.workspaces.inbound_secret(workspace_id).await
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
        let outcome = match err {
            Error::Unauthenticated(reason) => reason,
            _ => "error",
        };
        ::metrics::counter!("tessera_auth_failures_total", "reason" => outcome).increment(1);
        let credential_id = token::credential_id_of(bearer).unwrap_or_default();
        let event = Event {
            action,
            resource,
            outcome,
        };
        self.audit.failed_auth(&credential_id, peer, event).await;
    }
}

/// Audit resource of a workspace; the id is capped, since a refused request
/// may carry any text.
fn workspace_resource(workspace_id: &str) -> String {
    let id: String = workspace_id.chars().take(128).collect();
    format!("workspace:{id}")
}
