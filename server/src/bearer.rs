//! Resolves a bearer token to a principal: the check behind VerifyBearer and
//! behind caller authentication alike.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tessera_client::token::{self, TokenKind};

use crate::error::{Error, Result};
use crate::internal::InternalCredentials;
use crate::principal::{ADMIN_GROUP, Principal, PrincipalKind};
use crate::service_bearer::{ServiceAccount, ServiceMatch, ServiceSecrets};
use crate::store::{Store, UserKind, UserRecord};
use crate::workspaces::Workspaces;

/// How long a seeded service user is trusted before it is seeded again.
const RESEED_AFTER: Duration = Duration::from_secs(30);

/// Subject, user id and provider of the internal principal.
pub const INTERNAL_SUBJECT: &str = "server-internal";

/// Verifies every kind of bearer Tessera accepts.
pub struct Verifier {
    secrets: ServiceSecrets,
    store: Arc<dyn Store>,
    internal: Arc<InternalCredentials>,
    workspaces: Workspaces,
    /// Service users already seeded by this process, by service name: the
    /// database is asked once per name and period, not on every call.
    seeded: RwLock<HashMap<String, (UserRecord, Instant)>>,
}

impl Verifier {
    /// A verifier over the configured service secrets and the store.
    pub fn new(
        secrets: ServiceSecrets,
        store: Arc<dyn Store>,
        internal: Arc<InternalCredentials>,
    ) -> Self {
        Self {
            secrets,
            workspaces: Workspaces::new(store.clone()),
            store,
            internal,
            seeded: RwLock::new(HashMap::new()),
        }
    }

    /// Seeds the synthetic user of every configured service. Failures are
    /// logged; seeding is retried lazily when the service first calls.
    pub async fn seed_service_users(&self) {
        for account in self.secrets.accounts() {
            if let Err(err) = self.service_user(account).await {
                tracing::error!(service = %account.email, error = %err, "seeding service user failed");
            }
        }
    }

    /// The principal `bearer` authenticates.
    pub async fn verify(&self, bearer: &str) -> Result<Principal> {
        if bearer.is_empty() {
            return Err(Error::Unauthenticated("empty bearer"));
        }
        // Always checked first and always in full, so a token that is not a
        // service secret costs the same comparison work as one that is.
        if let Some(found) = self.secrets.find(bearer) {
            return self.service_principal(found).await;
        }
        match token::parse(bearer) {
            Err(_) => Err(Error::Unauthenticated("malformed bearer")),
            Ok(TokenKind::Internal) => match self.internal.check(bearer).await? {
                Some(_) => Ok(internal_principal(bearer)),
                None => Err(Error::Unauthenticated("unknown internal credential")),
            },
            Ok(TokenKind::UserAccess) => {
                let hash = token::sha256_hex(bearer);
                match self.store.user_by_token(&hash).await? {
                    Some(user) if user.kind == UserKind::Human => Ok(user_principal(user, bearer)),
                    _ => Err(Error::Unauthenticated("unknown bearer")),
                }
            }
            Ok(TokenKind::WorkspaceAuth) => self
                .workspaces
                .by_auth_token(bearer)
                .await?
                .ok_or(Error::Unauthenticated("unknown bearer")),
            Ok(_) => Err(Error::Unauthenticated("not a bearer credential")),
        }
    }

    async fn service_principal(&self, found: ServiceMatch<'_>) -> Result<Principal> {
        let account = found.account;
        let user = match self.service_user(account).await {
            Ok(user) => user,
            Err(err) => {
                tracing::error!(service = %account.email, error = %err, "service user unavailable");
                return Err(Error::Unauthenticated("service user unavailable"));
            }
        };
        Ok(Principal {
            kind: PrincipalKind::Service,
            subject: user.id,
            email: user.email,
            display_name: user.display_name,
            groups: user.groups,
            credential_id: found.credential_id,
        })
    }

    async fn service_user(&self, account: &ServiceAccount) -> Result<UserRecord> {
        if let Some(user) = self.cached(&account.name) {
            return Ok(user);
        }
        let user = self
            .store
            .ensure_user(
                &token::random_id()?,
                &account.email,
                &account.display_name,
                UserKind::Service,
                &[ADMIN_GROUP],
            )
            .await?;
        if let Ok(mut seeded) = self.seeded.write() {
            seeded.insert(account.name.clone(), (user.clone(), Instant::now()));
        }
        tracing::debug!(service = %account.email, "service user seeded");
        Ok(user)
    }

    /// The seeded user if it was seeded recently; older entries are seeded
    /// again, so a reset database gets its service users back while the
    /// process runs.
    fn cached(&self, name: &str) -> Option<UserRecord> {
        let seeded = self.seeded.read().ok()?;
        let (user, at) = seeded.get(name)?;
        (at.elapsed() < RESEED_AFTER).then(|| user.clone())
    }
}

/// The `USER` principal of a human's access token.
pub fn user_principal(user: UserRecord, bearer: &str) -> Principal {
    Principal {
        kind: PrincipalKind::User,
        subject: user.id,
        email: user.email,
        display_name: user.display_name,
        groups: user.groups,
        credential_id: token::credential_id(TokenKind::UserAccess.tag(), bearer),
    }
}

fn internal_principal(bearer: &str) -> Principal {
    Principal {
        kind: PrincipalKind::Internal,
        subject: INTERNAL_SUBJECT.to_owned(),
        email: String::new(),
        display_name: "Server internal".to_owned(),
        groups: Vec::new(),
        credential_id: token::credential_id(TokenKind::Internal.tag(), bearer),
    }
}
