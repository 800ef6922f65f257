//! Storage behind a small trait, so domain logic never sees SQL.
//!
//! [`SeaStore`] implements it with sea-orm on SQLite or PostgreSQL. All times
//! are Unix milliseconds; all secrets are hex SHA-256 digests.

mod entities;
mod sea;

use std::sync::Arc;

use async_trait::async_trait;
use tessera_client::Secret;

pub use sea::SeaStore;

/// Errors from the storage layer. Cloneable, because one failed batch of
/// writes fails every call whose write was in it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached (connection refused, pool timeout).
    #[error("database unavailable: {0}")]
    Unavailable(Arc<sea_orm::DbErr>),
    /// Any other database failure.
    #[error("database error: {0}")]
    Db(Arc<sea_orm::DbErr>),
}

impl From<sea_orm::DbErr> for StoreError {
    fn from(err: sea_orm::DbErr) -> Self {
        use sea_orm::{DbErr, RuntimeErr};
        let lost = match &err {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
            // A connection lost in the middle of a statement surfaces as an
            // execution or query error; it is an outage all the same.
            DbErr::Exec(RuntimeErr::SqlxError(cause))
            | DbErr::Query(RuntimeErr::SqlxError(cause)) => connection_lost(cause),
            _ => false,
        };
        if lost {
            StoreError::Unavailable(Arc::new(err))
        } else {
            StoreError::Db(Arc::new(err))
        }
    }
}

/// True for sqlx errors that mean the database went away rather than that
/// the statement was wrong.
fn connection_lost(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed => true,
        // SQLSTATE 08xxx: connection exception; 57P01-03: admin shutdown,
        // crash shutdown, cannot connect now; 53300: too many connections.
        Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Result of a storage call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Whether a user is a person or a synthetic service identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKind {
    /// Backs a `TESSERA_SERVICE_TOKEN_<NAME>` secret; never counts as a human.
    Service,
    /// A person.
    Human,
}

/// A user and the groups it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Stable random id.
    pub id: String,
    /// Unique e-mail address.
    pub email: String,
    /// Name for display.
    pub display_name: String,
    /// Person or service.
    pub kind: UserKind,
    /// Group names, sorted.
    pub groups: Vec<String>,
}

/// A user to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    /// Its id, used only if the user does not exist yet.
    pub id: String,
    /// Unique e-mail address.
    pub email: String,
    /// Name for display.
    pub display_name: String,
    /// Person or service.
    pub kind: UserKind,
    /// When it is created.
    pub created_at: i64,
}

/// A live ticket, keyed by its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketRecord {
    /// Hex SHA-256 of the ticket.
    pub hash: String,
    /// Identity the ticket is bound to.
    pub user_id: String,
    /// Identity provider of `user_id`.
    pub provider: String,
    /// Purpose the ticket is bound to; empty for none.
    pub purpose: String,
    /// When it was minted.
    pub minted_at: i64,
    /// When it stops being accepted.
    pub expires_at: i64,
}

/// The internal credential of one server process, kept alive by heartbeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternalCredentialRecord {
    /// Hex SHA-256 of the credential.
    pub hash: String,
    /// Random id of the process that minted it.
    pub instance_id: String,
    /// When it was minted.
    pub created_at: i64,
    /// Last time its process said it is alive.
    pub heartbeat_at: i64,
}

/// One audit log entry. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// When it happened.
    pub at: i64,
    /// E-mail or subject of the principal acting; empty when unknown.
    pub actor: String,
    /// What was attempted, e.g. `ticket.mint`.
    pub action: String,
    /// What it was done to, e.g. a ticket's truncated text or a user id.
    pub resource: String,
    /// `ok` or the failure reason.
    pub outcome: String,
    /// Public id of the credential presented; empty when none.
    pub credential_id: String,
    /// Remote address of the caller; empty when unknown.
    pub peer: String,
}

/// Makes the audit entry of a [`Store::take_ticket`] from the ticket it
/// found, if any.
/// (`Fn`: a batch that fails is retried write by write.)
pub type TakeAudit = Box<dyn Fn(Option<&TicketRecord>) -> AuditRecord + Send + Sync>;

/// The install token on file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallTokenRecord {
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// When it was minted.
    pub issued_at: i64,
    /// When it created the first admin, if it did.
    pub consumed_at: Option<i64>,
}

/// The first administrator to create with the install token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAdmin {
    /// Its user id.
    pub id: String,
    /// Its e-mail.
    pub email: String,
    /// Its display name.
    pub display_name: String,
    /// Hex SHA-256 of its first user access token.
    pub token_hash: String,
}

/// What [`Store::consume_install_token`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The token was pending with this hash; the admin now exists.
    Created(UserRecord),
    /// No pending token with this hash (wrong, replaced or already used).
    NotPending,
    /// A human user exists already; nothing was changed.
    HumanExists,
}

/// A provisioned workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceRecord {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Secret the platform presents to it; `None` for legacy workspaces.
    pub inbound_secret: Option<Secret>,
    /// Hex SHA-256 of its registration token.
    pub registration_hash: String,
    /// Hex SHA-256 of its current auth token, once registered.
    pub auth_hash: Option<String>,
    /// When it was provisioned.
    pub created_at: i64,
    /// When it first registered.
    pub registered_at: Option<i64>,
    /// When it last registered.
    pub last_registered_at: Option<i64>,
}

/// How a registration treats the workspace's auth token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthTokenChange<'a> {
    /// Leave it as it is.
    Keep,
    /// Set this hash only if no auth token is set yet (first registration).
    SetIfNone(&'a str),
    /// Replace it with `new` (rotation) if it is still `current` (`None`:
    /// no token); the old token stops verifying at once.
    Replace {
        /// Hash of the new auth token.
        new: &'a str,
        /// Hash the rotation expects to replace.
        current: Option<&'a str>,
    },
}

/// The database operations Tessera needs.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<()>;

    /// Creates `user` unless a user with its e-mail exists, adds that user
    /// to `groups`, and returns it. Idempotent and safe to race.
    async fn ensure_user(&self, user: &NewUser, groups: &[&str]) -> Result<UserRecord>;

    /// Stores a new ticket and, in the same transaction, its audit entry.
    async fn insert_ticket(&self, ticket: &TicketRecord, audit: Option<&AuditRecord>)
    -> Result<()>;

    /// Deletes the ticket with this hash and returns it, in one statement: of
    /// any number of concurrent callers, at most one gets `Some`. `audit`
    /// makes the audit entry from what was found; it is written in the
    /// same transaction.
    async fn take_ticket(
        &self,
        hash: &str,
        audit: Option<TakeAudit>,
    ) -> Result<Option<TicketRecord>>;

    /// Deletes tickets that expired before `now`; returns how many.
    async fn delete_expired_tickets(&self, now: i64) -> Result<u64>;

    /// Number of stored tickets, expired or not.
    async fn count_tickets(&self) -> Result<u64>;

    /// Inserts the credential, or refreshes its heartbeat if present.
    async fn upsert_internal_credential(&self, credential: &InternalCredentialRecord)
    -> Result<()>;

    /// Finds an internal credential by hash.
    async fn find_internal_credential(
        &self,
        hash: &str,
    ) -> Result<Option<InternalCredentialRecord>>;

    /// Forgets an internal credential (its process is shutting down).
    async fn delete_internal_credential(&self, hash: &str) -> Result<()>;

    /// Deletes internal credentials whose last heartbeat is before `cutoff`.
    async fn delete_stale_internal_credentials(&self, cutoff: i64) -> Result<u64>;

    /// True when at least one human (non-service) user exists.
    async fn any_human_user(&self) -> Result<bool>;

    /// The user an access token (by hash) belongs to.
    async fn user_by_token(&self, token_hash: &str) -> Result<Option<UserRecord>>;

    /// The install token on file.
    async fn install_token(&self) -> Result<Option<InstallTokenRecord>>;

    /// Files a new install token unless one (pending or consumed) is on
    /// file; true when this call filed it. Safe to race.
    async fn insert_install_token(&self, hash: &str, issued_at: i64) -> Result<bool>;

    /// Files a new pending install token, replacing a pending one; false
    /// (and nothing changed) when the one on file was consumed.
    async fn replace_install_token(&self, hash: &str, issued_at: i64) -> Result<bool>;

    /// In one transaction: marks the pending install token with `hash`
    /// consumed and creates `admin` in `groups` with its access token. Of
    /// concurrent callers at most one gets [`InstallOutcome::Created`].
    async fn consume_install_token(
        &self,
        hash: &str,
        now: i64,
        admin: &NewAdmin,
        groups: &[&str],
    ) -> Result<InstallOutcome>;

    /// Stores a new workspace; false when its id is taken.
    async fn insert_workspace(&self, workspace: &WorkspaceRecord) -> Result<bool>;

    /// The workspace with this id.
    async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRecord>>;

    /// The workspace whose registration token has this hash.
    async fn workspace_by_registration(&self, hash: &str) -> Result<Option<WorkspaceRecord>>;

    /// The workspace whose current auth token has this hash.
    async fn workspace_by_auth(&self, hash: &str) -> Result<Option<WorkspaceRecord>>;

    /// Records a registration at `now` and applies `auth`; true when the
    /// auth token hash was written (false for [`AuthTokenChange::Keep`], or
    /// when another registration set one first).
    async fn record_registration(
        &self,
        id: &str,
        now: i64,
        auth: AuthTokenChange<'_>,
    ) -> Result<bool>;

    /// Connections open in the pool and how many of them are idle, where
    /// the backend can tell.
    fn pool_usage(&self) -> Option<(u32, usize)> {
        None
    }

    /// Appends an audit entry.
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;

    /// The newest `limit` audit entries, newest first.
    async fn recent_audit(&self, limit: u64) -> Result<Vec<AuditRecord>>;
}
