//! The synthetic user behind each configured service secret
//! (`<name>@system.local`, in `Admin`), seeded at startup and again lazily,
//! so a reset database or a new name works before the next restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tessera_client::token;

use super::SharedSecrets;
use super::service_secrets::{ServiceAccount, ServiceMatch, ServiceSecrets};
use crate::domain::{ADMIN_GROUP, Error, Principal, PrincipalKind, Result};
use crate::store::{NewUser, Store, UserKind, UserRecord};

/// How long a seeded service user is trusted before it is seeded again.
const RESEED_AFTER: Duration = Duration::from_secs(30);

/// The service secrets and the users they resolve to.
pub(crate) struct ServiceUsers {
    /// Replaced whole when the tokens file is reloaded.
    secrets: Arc<SharedSecrets>,
    store: Arc<dyn Store>,
    /// Service users already seeded by this process, by service name: the
    /// database is asked once per name and period, not on every call.
    seeded: RwLock<HashMap<String, (UserRecord, Instant)>>,
}

impl ServiceUsers {
    pub(crate) fn new(secrets: Arc<SharedSecrets>, store: Arc<dyn Store>) -> Self {
        Self {
            secrets,
            store,
            seeded: RwLock::new(HashMap::new()),
        }
    }

    /// Seeds the user of every configured service. Failures are logged;
    /// seeding is retried when the service first calls.
    pub(crate) async fn seed_all(&self) {
        let secrets = self.secrets.load();
        for account in secrets.accounts() {
            if let Err(err) = self.user(account).await {
                tracing::error!(service = %account.email, error = %err, "seeding service user failed");
            }
        }
    }

    /// The secrets as they stand now; a call keeps the set it took even if
    /// a reload replaces it meanwhile.
    pub(crate) fn secrets(&self) -> Arc<ServiceSecrets> {
        self.secrets.load()
    }

    /// The `SERVICE` principal of a matched secret. A user that cannot be
    /// seeded is a refusal, never a crash.
    pub(crate) async fn principal(&self, found: ServiceMatch<'_>) -> Result<Principal> {
        let account = found.account;
        let user = match self.user(account).await {
            Ok(Some(user)) => user,
            Ok(None) => return Err(Error::PrincipalUnavailable("service user e-mail taken")),
            Err(err) => {
                tracing::error!(service = %account.email, error = %err, "service user unavailable");
                return Err(Error::PrincipalUnavailable("service user unavailable"));
            }
        };
        Ok(Principal {
            kind: PrincipalKind::Service,
            subject: user.id,
            email: user.email,
            display_name: user.display_name,
            groups: user.groups,
            credential_id: found.credential_id.to_owned(),
        })
    }

    async fn user(&self, account: &ServiceAccount) -> Result<Option<UserRecord>> {
        if let Some(user) = self.cached(&account.name) {
            return Ok(Some(user));
        }
        let new = NewUser {
            id: token::random_id()?,
            email: account.email.clone(),
            display_name: account.display_name.clone(),
            kind: UserKind::Service,
            created_at: self.store.now_ms(),
        };
        let Some(user) = self.store.ensure_user(&new, &[ADMIN_GROUP]).await? else {
            tracing::error!(service = %account.email, "service user not seeded: a user of another kind holds its e-mail");
            return Ok(None);
        };
        if let Ok(mut seeded) = self.seeded.write() {
            seeded.insert(account.name.clone(), (user.clone(), Instant::now()));
        }
        tracing::debug!(service = %account.email, "service user seeded");
        Ok(Some(user))
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
