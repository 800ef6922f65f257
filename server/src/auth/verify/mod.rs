//! Resolves a bearer to a principal: the check behind caller authentication
//! and behind VerifyBearer alike. It knows no transport.
//!
//! Every kind of bearer is handled here: service secrets (in memory, in
//! constant time), user access tokens and workspace auth tokens (by hash in
//! the store), the internal credential (see
//! `domain/internal_credential.rs`), and, for RegisterWorkspace only, a
//! workspace's registration token.

mod service_secrets;
mod service_users;

use std::sync::Arc;

use tessera_client::token::{self, TokenKind};

pub(crate) use service_secrets::ServiceSecrets;
use service_users::ServiceUsers;

use crate::domain::{Error, InternalCredentials, Principal, Result};
use crate::store::{Store, UserKind};

/// Verifies every kind of bearer Tessera accepts.
pub(crate) struct Verifier {
    services: ServiceUsers,
    store: Arc<dyn Store>,
    internal: Arc<InternalCredentials>,
}

impl Verifier {
    /// A verifier over the configured service secrets and the store.
    pub(crate) fn new(
        secrets: ServiceSecrets,
        store: Arc<dyn Store>,
        internal: Arc<InternalCredentials>,
    ) -> Self {
        Self {
            services: ServiceUsers::new(secrets, store.clone()),
            store,
            internal,
        }
    }

    /// Seeds the synthetic user of every configured service.
    pub(crate) async fn seed_service_users(&self) {
        self.services.seed_all().await;
    }

    /// The principal `bearer` authenticates.
    pub(crate) async fn verify(&self, bearer: &str) -> Result<Principal> {
        if bearer.is_empty() {
            return Err(Error::Unauthenticated("empty bearer"));
        }
        // Always checked first and always in full, so a token that is not a
        // service secret costs the same comparison work as one that is.
        if let Some(found) = self.services.find(bearer) {
            return self.services.principal(found).await;
        }
        match token::parse(bearer) {
            Err(_) => Err(Error::Unauthenticated("malformed bearer")),
            Ok(TokenKind::Internal) => match self.internal.check(bearer).await? {
                Some(_) => Ok(Principal::internal(bearer)),
                None => Err(Error::Unauthenticated("unknown internal credential")),
            },
            Ok(TokenKind::UserAccess) => {
                let hash = token::sha256_hex(bearer);
                match self.store.user_by_token(&hash).await? {
                    Some(user) if user.kind == UserKind::Human => Ok(Principal::user(user, bearer)),
                    _ => Err(Error::Unauthenticated("unknown bearer")),
                }
            }
            Ok(TokenKind::WorkspaceAuth) => {
                let hash = token::sha256_hex(bearer);
                let workspace = self.store.workspace_by_auth(&hash).await?;
                let workspace = workspace.ok_or(Error::Unauthenticated("unknown bearer"))?;
                Ok(Principal::workspace(
                    workspace,
                    TokenKind::WorkspaceAuth,
                    bearer,
                ))
            }
            Ok(_) => Err(Error::Unauthenticated("not a bearer credential")),
        }
    }

    /// The workspace a registration or auth token belongs to, as the
    /// principal RegisterWorkspace admits.
    pub(crate) async fn registrant(&self, bearer: &str) -> Result<Principal> {
        let kind = token::parse(bearer).map_err(|_| Error::Unauthenticated("malformed bearer"))?;
        let hash = token::sha256_hex(bearer);
        let workspace = match kind {
            TokenKind::WorkspaceRegistration => self.store.workspace_by_registration(&hash).await?,
            TokenKind::WorkspaceAuth => self.store.workspace_by_auth(&hash).await?,
            _ => return Err(Error::Unauthenticated("not a workspace credential")),
        };
        let workspace = workspace.ok_or(Error::Unauthenticated("unknown workspace credential"))?;
        Ok(Principal::workspace(workspace, kind, bearer))
    }
}

/// The audit outcome of a failed verification; counted by reason.
pub(crate) fn failure_reason(err: &Error) -> &'static str {
    let reason = match err {
        Error::Unauthenticated(reason) => reason,
        _ => "error",
    };
    ::metrics::counter!("tessera_auth_failures_total", "reason" => reason).increment(1);
    reason
}
