//! Storage behind a small trait, so domain logic never sees SQL.
//!
//! [`SeaStore`] implements it with sea-orm on SQLite or PostgreSQL; the
//! values it exchanges are in `records.rs`, and its errors are
//! [`StoreError`], which names no backend.

mod audit;
mod clock;
mod credentials;
mod database_url;
mod records;
mod sea;
pub mod sealing;
mod tickets;
mod workspaces;

use std::future::Future;

use async_trait::async_trait;

pub use audit::{AuditEntry, AuditQuery};
pub use clock::DatabaseClock;
pub use credentials::*;
pub use database_url::{Backend, DatabaseUrl, DatabaseUrlError};
pub use records::*;
pub use sea::{Rewrapped, SeaStore};
pub use tickets::*;
pub use workspaces::*;

/// Errors from the storage layer. The message is the backend's, for the
/// log; it never holds a secret (statements bind hashes, never tokens).
/// Cloned when one failed batch fails every call in it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached (connection refused or lost, pool
    /// timeout, a batch worker that stopped).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Db(String),
    /// A retrievable secret could not be sealed, or a stored one opened: a
    /// key that is not configured, or a value altered or moved from
    /// another workspace's row. Names the workspace and key id, never a
    /// secret.
    #[error("encrypted secret: {0}")]
    Sealing(String),
}

/// Result of a storage call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database operations Tessera needs (those on credential records are
/// in [`CredentialStore`], those on workspaces in [`WorkspaceStore`]).
#[async_trait]
pub trait Store: CredentialStore + WorkspaceStore + Send + Sync + 'static {
    /// Succeeds when the database answers a trivial query (on PostgreSQL,
    /// a reading of its clock, which [`Store::now_ms`] then follows).
    async fn ping(&self) -> Result<()>;

    /// The time every replica on this database agrees on, in Unix
    /// milliseconds: the database's clock (see `clock.rs`). Every time
    /// stored or compared with a stored one comes from here.
    fn now_ms(&self) -> i64;

    /// Creates `user` unless a user with its e-mail exists, adds that user
    /// to `groups`, and returns it. Idempotent and safe to race. `None`
    /// when the e-mail belongs to a user of another kind, which is left
    /// untouched.
    async fn ensure_user(&self, user: &NewUser, groups: &[&str]) -> Result<Option<UserRecord>>;

    /// Stores a new ticket and, in the same transaction, its audit entry.
    async fn insert_ticket(&self, ticket: &TicketRecord, audit: Option<&AuditRecord>)
    -> Result<()>;

    /// Deletes the ticket `take` presents and judges it, in one statement:
    /// of any number of concurrent callers, at most one finds the row. The
    /// take's audit entry, completed from the verdict, is written in the
    /// same transaction.
    async fn take_ticket(&self, take: &TicketTake) -> Result<Verdict>;

    /// Deletes at most `limit` tickets that expired before `now`, oldest
    /// first; returns how many.
    async fn delete_expired_tickets(&self, now: i64, limit: u64) -> Result<u64>;

    /// Deletes at most `limit` audit entries recorded before `cutoff`,
    /// oldest first; returns how many.
    async fn delete_audit_before(&self, cutoff: i64, limit: u64) -> Result<u64>;

    /// Inserts the credential, or refreshes its heartbeat if present.
    async fn upsert_internal_credential(&self, credential: &InternalCredentialRecord)
    -> Result<()>;

    /// Finds an internal credential by hash.
    async fn find_internal_credential(
        &self,
        hash: &str,
    ) -> Result<Option<InternalCredentialRecord>>;

    /// Marks revoked the internal credential whose public id ends in the
    /// 16 hex digits `id_hex`, unless it was (the first time stays), and
    /// returns it.
    async fn revoke_internal_credential(
        &self,
        id_hex: &str,
        now: i64,
    ) -> Result<Option<InternalCredentialRecord>>;

    /// Forgets an internal credential (its process is shutting down).
    async fn delete_internal_credential(&self, hash: &str) -> Result<()>;

    /// Deletes internal credentials whose last heartbeat is before `cutoff`.
    async fn delete_stale_internal_credentials(&self, cutoff: i64) -> Result<u64>;

    /// True when at least one human (non-service) user exists.
    async fn any_human_user(&self) -> Result<bool>;

    /// The user an access token (by hash) belongs to, and the token's
    /// standing (revoked or expired tokens are found too, to tell why they
    /// are refused).
    async fn user_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(UserRecord, CredentialState)>>;

    /// Revokes, at `now`, every live credential of `subject` and every
    /// unredeemed invite a user `subject` created; with `disable`, also
    /// disables the user `subject` — unless that would leave no enabled
    /// member of `keep_admins_of` with a live access token.
    async fn revoke_subject(
        &self,
        subject: &str,
        now: i64,
        disable: bool,
        keep_admins_of: &str,
    ) -> Result<SubjectRevoked>;

    /// The user whose e-mail is `email`, compared lower-cased.
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>>;

    /// Stores `token`, an access token of its subject, unless that user is
    /// missing, not human or disabled, or the credential it was
    /// `minted_with` is no longer live (false then, nothing stored); a
    /// concurrent revocation or disable either sees the token or is seen.
    async fn insert_user_credential(
        &self,
        token: &CredentialRecord,
        minted_with: Option<&str>,
    ) -> Result<bool>;

    /// Enables the user `id` again; false when it was not disabled.
    async fn enable_user(&self, id: &str) -> Result<bool>;

    /// Creates the human `user` in `groups` with its `invite`, unless its
    /// e-mail is taken (any kind of user): false then, nothing written.
    async fn invite_user(
        &self,
        user: &NewUser,
        groups: &[&str],
        invite: &CredentialRecord,
    ) -> Result<bool>;

    /// In one transaction: spends the live invite with `invite_hash` and
    /// stores `token`, the invited user's access token, if its inviter is
    /// still an enabled member of `admin_group` and the user is enabled. Of
    /// concurrent redemptions at most one gets [`Redemption::Redeemed`].
    async fn redeem_invite(
        &self,
        invite_hash: &str,
        now: i64,
        token: &CredentialRecord,
        admin_group: &str,
    ) -> Result<Redemption>;

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
    /// concurrent callers at most one gets [`InstallOutcome::Created`]; the
    /// others get [`InstallOutcome::HumanExists`].
    async fn consume_install_token(
        &self,
        hash: &str,
        now: i64,
        admin: &NewAdmin,
        groups: &[&str],
    ) -> Result<InstallOutcome>;

    /// Connections open in the pool and how many of them are idle, where
    /// the backend can tell.
    fn pool_usage(&self) -> Option<(u32, usize)> {
        None
    }

    /// Appends an audit entry.
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;

    /// The audit entries `query` selects, newest first: by `(at, id)`
    /// descending.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Adds failed authentications (a count per key) to the counters every
    /// replica shares, in the database clock's current minute, and returns
    /// each key's counts after the addition. On SQLite, where one process
    /// owns the database, nothing is shared and no tally comes back.
    async fn add_auth_failures(&self, failures: &[(String, u32)]) -> Result<Vec<FailureTally>>;

    /// Deletes at most `limit` failure counters of keys that failed in
    /// neither this minute nor the one before; returns how many.
    async fn delete_stale_auth_failures(&self, limit: u64) -> Result<u64>;
}

/// Told of every audit entry once it is committed, for a copy outside the
/// database. Called by the group commit's writer: it must return at once
/// (hand the entries over, never wait).
pub trait AuditTap: Send + Sync + 'static {
    /// `entries` were committed, in the order they were appended.
    fn committed(&self, entries: &[&AuditRecord]);
}

/// One key's shared count of failed authentications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureTally {
    /// The key (`peer:<address>` or `credential:<public id>`).
    pub key: String,
    /// Failures in the current minute, from every replica.
    pub count: i64,
    /// Failures in the minute before.
    pub previous: i64,
    /// Milliseconds of the current minute gone, by the database's clock.
    pub elapsed_ms: i64,
}

/// Rows one reaper statement deletes at most: short statements, so the
/// reaper never holds the write lock for long.
const REAP_CHUNK: u64 = 1_000;

/// Runs `delete` (one statement deleting at most its argument's rows) until
/// a chunk comes back short, yielding between chunks so that the calls
/// waiting for the write lock get it; returns the rows deleted.
pub(crate) async fn delete_in_chunks<F, Fut>(mut delete: F) -> Result<u64>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let mut total = 0;
    loop {
        let deleted = delete(REAP_CHUNK).await?;
        total += deleted;
        if deleted < REAP_CHUNK {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
