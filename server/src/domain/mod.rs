//! The transport-free service: one file per RPC group, each holding its
//! rules, its audit and its store calls. The gRPC adapter only decodes,
//! calls and converts; `docs/design.md` follows one request through.

mod audit;
mod audit_events;
mod banner;
mod bearers;
mod credentials;
mod error;
mod install;
mod internal_credential;
mod issuing;
mod last_used;
mod page_token;
mod pasted;
mod principal;
mod recovery;
mod text;
mod tickets;
mod users;
mod validate;
mod workspaces;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use audit::{Auditor, Event};
pub(crate) use audit_events::{AuditEvents, AuditFilter};
pub(crate) use banner::BannerSink;
pub(crate) use bearers::Bearers;
pub(crate) use credentials::{AccessTokenPolicy, CredentialFilter, Credentials, Listed};
pub(crate) use error::{Error, Result};
pub(crate) use install::{Install, InstallState, Redemption};
pub(crate) use internal_credential::InternalCredentials;
pub(crate) use last_used::LastUsed;
use pasted::PastedSecrets;
pub(crate) use principal::{ADMIN_GROUP, Caller, Principal, PrincipalKind};
pub(crate) use recovery::{OPERATOR, Recovery};
pub(crate) use tickets::{DEFAULT_MAX_TTL_SECS, DEFAULT_TTL_SECS, TicketPolicy};
pub(crate) use tickets::{TicketIdentity, TicketRequest, Tickets};
pub(crate) use users::{Invitation, InviteRedemption, Users};
pub(crate) use workspaces::{Registration, WorkspacePolicy, Workspaces, inbound_id};

use crate::auth::Authenticator;
use crate::auth::verify::{SharedSecrets, Verifier};
use crate::store::Store;
pub(crate) use crate::store::TicketRejection;

/// The lifetimes callers may ask for.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Policies {
    /// Of tickets.
    pub tickets: TicketPolicy,
    /// Of user access tokens.
    pub access_tokens: AccessTokenPolicy,
    /// Of workspace secrets.
    pub workspaces: WorkspacePolicy,
}

/// Tessera's domain, wired over a store: one field per RPC group.
pub(crate) struct Tessera {
    /// VerifyBearer.
    pub(crate) bearers: Bearers,
    /// MintTicket, ConsumeTicket.
    pub(crate) tickets: Tickets,
    /// GetInternalCredential, and the check every replica makes.
    pub(crate) internal: Arc<InternalCredentials>,
    /// The install-token RPCs.
    pub(crate) install: Install,
    /// The workspace RPCs.
    pub(crate) workspaces: Workspaces,
    /// Access tokens, listing and revocation.
    pub(crate) credentials: Credentials,
    /// Invitations and revoking everything of a subject.
    pub(crate) users: Users,
    /// The operator commands' recovery path.
    pub(crate) recovery: Recovery,
    /// ListAuditEvents.
    pub(crate) audit_events: AuditEvents,
    /// The last-used times of accepted credentials, until flushed.
    pub(crate) last_used: Arc<LastUsed>,
    verifier: Arc<Verifier>,
    audit: Auditor,
}

impl Tessera {
    /// Wires the domain together; install-token banners go to `banner`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        secrets: Arc<SharedSecrets>,
        policies: Policies,
        internal: Arc<InternalCredentials>,
        banner: BannerSink,
    ) -> Self {
        let audit = Auditor::new(store.clone());
        let last_used = Arc::new(LastUsed::new(store.clone(), last_used::DEFAULT_CAPACITY));
        let verifier = Arc::new(Verifier::new(
            secrets.clone(),
            store.clone(),
            internal.clone(),
            last_used.clone(),
        ));
        Self {
            bearers: Bearers::new(verifier.clone(), audit.clone()),
            tickets: Tickets::new(store.clone(), policies.tickets, internal.clone()),
            install: Install::new(store.clone(), banner, policies.access_tokens),
            workspaces: Workspaces::new(store.clone(), policies.workspaces),
            users: Users::new(
                store.clone(),
                policies.access_tokens,
                PastedSecrets::new(secrets.clone()),
            ),
            credentials: Credentials::new(store.clone(), policies.access_tokens, secrets),
            recovery: Recovery::new(store.clone(), policies.access_tokens),
            audit_events: AuditEvents::new(store),
            internal,
            last_used,
            verifier,
            audit,
        }
    }

    /// For operator commands (`tessera install-token …`): no service
    /// secrets, and an internal credential that is never minted.
    pub(crate) fn offline(store: Arc<dyn Store>, banner: BannerSink) -> Self {
        let internal = Arc::new(InternalCredentials::new(store.clone(), Duration::ZERO));
        let secrets = Arc::new(SharedSecrets::default());
        let policies = Policies::default();
        Self::new(store, secrets, policies, internal, banner)
    }

    /// Seeds the synthetic user of every configured service (after a
    /// reload too: names already seeded are not asked for again).
    pub(crate) async fn seed_service_users(&self) {
        self.verifier.seed_service_users().await;
    }

    /// The caller authentication the auth layer applies.
    pub(crate) fn authenticator(&self) -> Authenticator {
        Authenticator::new(self.verifier.clone(), self.audit.clone())
    }
}
