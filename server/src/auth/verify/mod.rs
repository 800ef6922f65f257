//! Resolves a bearer to a principal: the check behind caller authentication
//! and behind VerifyBearer alike. It knows no transport.
//!
//! Every kind of bearer is handled here: service secrets (in memory, in
//! constant time), user access tokens and workspace auth tokens (by hash in
//! the store), the internal credential (see
//! `domain/internal_credential.rs`), and, as a caller's credential only
//! (the policy table admits it on RegisterWorkspace alone), a workspace's
//! registration token.

mod service_secrets;
mod service_users;
mod tokens_file;

use std::sync::Arc;

use tessera_client::token::{self, TokenKind};

pub(crate) use service_secrets::{ListedSecret, ServiceSecrets};
use service_users::ServiceUsers;
pub(crate) use tokens_file::{configured as configured_secrets, read as read_tokens_file};

/// The service secrets in force; a SIGHUP with a tokens file replaces them.
pub(crate) type SharedSecrets = crate::reload::Live<Arc<ServiceSecrets>>;

use crate::domain::{Error, InternalCredentials, LastUsed, Principal, Result};
use crate::store::{CredentialState, Store, Unusable, UserKind};

/// Verifies every kind of bearer Tessera accepts.
pub(crate) struct Verifier {
    services: ServiceUsers,
    store: Arc<dyn Store>,
    internal: Arc<InternalCredentials>,
    last_used: Arc<LastUsed>,
}

impl Verifier {
    /// A verifier over the configured service secrets and the store,
    /// noting in `last_used` every stored credential it accepts.
    pub(crate) fn new(
        secrets: Arc<SharedSecrets>,
        store: Arc<dyn Store>,
        internal: Arc<InternalCredentials>,
        last_used: Arc<LastUsed>,
    ) -> Self {
        Self {
            services: ServiceUsers::new(secrets, store.clone()),
            store,
            internal,
            last_used,
        }
    }

    /// Seeds the synthetic user of every configured service.
    pub(crate) async fn seed_service_users(&self) {
        self.services.seed_all().await;
    }

    /// The principal `bearer` authenticates: what VerifyBearer answers.
    /// Registration tokens are not bearers and are refused.
    pub(crate) async fn verify(&self, bearer: &str) -> Result<Principal> {
        self.resolve(bearer, false).await
    }

    /// The principal of a caller's own credential: any bearer, and also a
    /// workspace's registration token, so that a valid credential on an
    /// RPC that does not take its kind is told apart from a bad one (the
    /// policy table refuses it as `PERMISSION_DENIED`, uncharged).
    pub(crate) async fn caller(&self, bearer: &str) -> Result<Principal> {
        self.resolve(bearer, true).await
    }

    async fn resolve(&self, bearer: &str, registration: bool) -> Result<Principal> {
        if bearer.is_empty() {
            return Err(Error::Unauthenticated("empty bearer"));
        }
        // Always checked first and always in full, so a token that is not a
        // service secret costs the same comparison work as one that is.
        let secrets = self.services.secrets();
        if let Some(found) = secrets.find(bearer) {
            // Per slot, so an operator sees when the previous secret of a
            // rotation is no longer presented.
            found.count_use();
            return Ok(self.used(self.services.principal(found).await?));
        }
        let kind = token::parse(bearer).map_err(|_| Error::Unauthenticated("malformed bearer"))?;
        let hash = token::sha256_hex(bearer);
        // The public id comes from the same hash: a second one per call
        // would be waste.
        let credential_id = || token::credential_id_from_hex(kind.tag(), &hash);
        match kind {
            TokenKind::Internal => match self.internal.check(bearer, &hash).await? {
                Some(_) => Ok(Principal::internal(credential_id())),
                None => Err(Error::Unauthenticated("unknown internal credential")),
            },
            TokenKind::UserAccess => match self.store.user_by_token(&hash).await? {
                Some((user, state)) if user.kind == UserKind::Human => {
                    self.accept(state)?;
                    if user.disabled_at.is_some() {
                        return Err(Error::Unauthenticated("disabled user"));
                    }
                    Ok(self.used(Principal::user_by(user, credential_id())))
                }
                _ => Err(Error::Unauthenticated("unknown bearer")),
            },
            TokenKind::WorkspaceAuth => {
                let found = self.store.workspace_by_auth(&hash).await?;
                let (workspace, state) = found.ok_or(Error::Unauthenticated("unknown bearer"))?;
                self.accept(state)?;
                Ok(self.used(Principal::workspace(workspace, credential_id())))
            }
            TokenKind::WorkspaceRegistration if registration => {
                let found = self.store.workspace_by_registration(&hash).await?;
                let (workspace, state) = found.ok_or(Error::Unauthenticated("unknown bearer"))?;
                self.accept(state)?;
                Ok(self.used(Principal::workspace(workspace, credential_id())))
            }
            _ => Err(Error::Unauthenticated("not a bearer credential")),
        }
    }
}

impl Verifier {
    /// Refuses a stored credential that was revoked or has expired, by the
    /// database's clock; each has its own audit outcome.
    fn accept(&self, state: CredentialState) -> Result<()> {
        state
            .standing(self.store.now_ms())
            .map_err(|unusable| match unusable {
                Unusable::Revoked => Error::Unauthenticated("revoked credential"),
                Unusable::Expired => Error::Unauthenticated("expired credential"),
            })
    }

    /// Notes the use of the stored credential that authenticated
    /// `principal`; written later, off the request path.
    fn used(&self, principal: Principal) -> Principal {
        self.last_used.note(&principal.credential_id);
        principal
    }
}

/// The audit outcome of a failed verification; counted by reason.
pub(crate) fn failure_reason(err: &Error) -> &'static str {
    let reason = match err {
        Error::Unauthenticated(reason) | Error::PrincipalUnavailable(reason) => reason,
        _ => "error",
    };
    ::metrics::counter!("tessera_auth_failures_total", "reason" => reason).increment(1);
    reason
}
