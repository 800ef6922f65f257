//! [`Store`] on sea-orm: SQLite (default) or PostgreSQL, chosen by URL.
//!
//! The trait implementation only delegates: the queries live beside their
//! tables in `records.rs` (tickets, internal credentials, audit),
//! `users.rs` (users, access tokens, the install token) and `workspaces.rs`.
//! Ticket and audit writes go through the group commit in `batch.rs`,
//! VerifyBearer's token lookups through `lookups.rs`.

mod batch;
mod lookups;
mod queue;
mod records;
mod unnest;
mod users;
mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnAcquireErr, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    DbErr, EntityTrait, Select,
};
use tessera_migrations::{Migrator, MigratorTrait};
use tokio::sync::Semaphore;

use super::{
    AuditRecord, AuthTokenChange, InstallOutcome, InstallTokenRecord, InternalCredentialRecord,
    NewAdmin, NewUser, Result, Store, StoreError, TakeAudit, TicketRecord, UserRecord,
    WorkspaceRecord,
};

/// How long a caller waits for a pooled connection before the database
/// counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default pool sizes.
const SQLITE_POOL: u32 = 8;
const POSTGRES_POOL: u32 = 16;
/// Prepared statements kept per SQLite connection. The hot lookups are a
/// handful; batched writes come in many sizes, each its own statement, and
/// a cached 512-row insert is large.
const SQLITE_STATEMENT_CACHE: usize = 16;
/// Page cache per SQLite connection, in KiB (SQLite's default is 2,000).
/// A write by one connection empties the cache of every other, so under
/// load the pooled connections, which mostly read, keep little; the group
/// commit writes on a connection of its own, whose cache stays warm across
/// batches: the interior pages of the ticket index, the tail of the audit
/// log.
const SQLITE_READER_CACHE_KIB: u32 = 512;
const SQLITE_WRITER_CACHE_KIB: u32 = 2000;
/// Writer tasks of the group commit. SQLite takes one writer at a time
/// anyway; PostgreSQL commits in parallel, a quarter of the pool at most.
const SQLITE_WRITERS: usize = 1;
const POSTGRES_WRITERS_PER_POOL: u32 = 4;
/// Worker tasks per kind of batched token lookup (user, workspace): a
/// quarter of the pool each, so lookups hold half of it at most.
const LOOKUP_WORKERS_PER_POOL: u32 = 4;
/// A pooled PostgreSQL connection idle this long is checked before use; a
/// busy one is not, which saves a round trip per statement (a connection
/// that broke anyway fails its statement as UNAVAILABLE and is replaced).
const POSTGRES_IDLE_CHECK: Duration = Duration::from_secs(10);
/// How long SQLite waits for another writer (another process, or the CLI).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Migration attempts before giving up: replicas starting together race to
/// migrate, and the loser retries and finds the work done.
const MIGRATION_ATTEMPTS: u32 = 5;

/// The row `select` finds, for selects that match one row at most (by key
/// or by the hash of a random token). Not sea-orm's `one()`: that binds a
/// `LIMIT ?`, and SQLite then prepares the statement again on every
/// execution; a profile of VerifyBearer put 15% of the server's CPU there.
async fn only_row<E: EntityTrait>(
    select: Select<E>,
    db: &impl ConnectionTrait,
) -> Result<Option<E::Model>> {
    Ok(select.all(db).await?.pop())
}

/// Options every SQLite connection shares, with a page cache of `cache_kib`.
fn sqlite_options(opts: SqliteConnectOptions, cache_kib: u32) -> SqliteConnectOptions {
    opts.create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .statement_cache_capacity(SQLITE_STATEMENT_CACHE)
        .pragma("cache_size", format!("-{cache_kib}"))
}

/// The group commit's own connection on SQLite (see `SQLITE_WRITER_CACHE_KIB`).
fn sqlite_writer(mut options: ConnectOptions) -> ConnectOptions {
    options
        .max_connections(1)
        .map_sqlx_sqlite_opts(|opts| sqlite_options(opts, SQLITE_WRITER_CACHE_KIB));
    options
}

/// The sea-orm implementation of [`Store`].
#[derive(Clone, Debug)]
pub struct SeaStore {
    db: DatabaseConnection,
    writes: Arc<batch::Batcher>,
    lookups: Arc<lookups::Lookups>,
    /// One permit per pooled connection. A call waits for its connection
    /// here, holding a few bytes, instead of inside sea-orm and sqlx, where
    /// a pending call holds about 8 KiB: with 1,000 calls waiting, that
    /// was 40% of the heap (valgrind massif).
    gate: Arc<Semaphore>,
}

impl SeaStore {
    /// Connects to `url` (`sqlite:…` creates the file if missing; anything
    /// else is PostgreSQL) with the default pool size.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_pool(url, None).await
    }

    /// Connects with at most `max_connections` pooled connections (default:
    /// 8 on SQLite, 16 on PostgreSQL, so several replicas stay below
    /// PostgreSQL's default limit of 100).
    pub async fn connect_with_pool(url: &str, max_connections: Option<u32>) -> Result<Self> {
        let mut options = ConnectOptions::new(url);
        options
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_timeout(ACQUIRE_TIMEOUT)
            .sqlx_logging(false);
        let sqlite = url.starts_with("sqlite:");
        let default_pool = if sqlite { SQLITE_POOL } else { POSTGRES_POOL };
        let pool = max_connections.unwrap_or(default_pool);
        options.max_connections(pool);
        let (db, writes) = if sqlite {
            // A connection to a local file does not go stale: checking one
            // before each use would only cost two thread hand-offs.
            options.test_before_acquire(false);
            let writer = sqlite_writer(options.clone());
            options.map_sqlx_sqlite_opts(|opts| sqlite_options(opts, SQLITE_READER_CACHE_KIB));
            let db = Database::connect(options).await?;
            let writer = Database::connect(writer).await?;
            (db, batch::Batcher::start(&writer, SQLITE_WRITERS))
        } else {
            options.test_before_acquire_if_idle_for(POSTGRES_IDLE_CHECK);
            let db = Database::connect(options).await?;
            let writers = usize::try_from(pool / POSTGRES_WRITERS_PER_POOL).unwrap_or(1);
            let writes = batch::Batcher::start(&db, writers);
            (db, writes)
        };
        let writes = Arc::new(writes);
        let lookup_workers = usize::try_from(pool / LOOKUP_WORKERS_PER_POOL).unwrap_or(1);
        let lookups = Arc::new(lookups::Lookups::start(&db, lookup_workers));
        let gate = Arc::new(Semaphore::new(usize::try_from(pool).unwrap_or(1)));
        Ok(Self {
            db,
            writes,
            lookups,
            gate,
        })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        let mut attempt = 1;
        loop {
            match Migrator::up(&self.db, None).await {
                Ok(()) => return Ok(()),
                Err(err) if attempt < MIGRATION_ATTEMPTS => {
                    tracing::warn!(attempt, error = %err, "migration failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Runs `call` once a connection is likely free (see `gate`); waits as
    /// long as the pool would before reporting the database unavailable.
    async fn gated<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.gate.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            let timeout = DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
            return Err(StoreError::from(timeout));
        };
        call.await
    }

    /// Closes the connection pool.
    pub async fn close(self) {
        drop(self.writes);
        drop(self.lookups);
        if let Err(err) = self.db.close().await {
            tracing::warn!(error = %err, "closing the database pool failed");
        }
    }
}

#[async_trait]
impl Store for SeaStore {
    async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    async fn ensure_user(&self, user: &NewUser, groups: &[&str]) -> Result<UserRecord> {
        self.gated(users::ensure_user(&self.db, user, groups)).await
    }

    async fn insert_ticket(
        &self,
        ticket: &TicketRecord,
        audit: Option<&AuditRecord>,
    ) -> Result<()> {
        let write = batch::Write::Ticket(ticket.clone(), audit.cloned());
        self.writes.write(write).await.map(drop)
    }

    async fn take_ticket(
        &self,
        hash: &str,
        audit: Option<TakeAudit>,
    ) -> Result<Option<TicketRecord>> {
        self.writes
            .write(batch::Write::Take(hash.to_owned(), audit))
            .await
    }

    async fn delete_expired_tickets(&self, now: i64) -> Result<u64> {
        self.gated(records::delete_expired_tickets(&self.db, now))
            .await
    }

    async fn count_tickets(&self) -> Result<u64> {
        self.gated(records::count_tickets(&self.db)).await
    }

    async fn upsert_internal_credential(&self, record: &InternalCredentialRecord) -> Result<()> {
        self.gated(records::upsert_internal_credential(&self.db, record))
            .await
    }

    async fn find_internal_credential(
        &self,
        hash: &str,
    ) -> Result<Option<InternalCredentialRecord>> {
        self.gated(records::find_internal_credential(&self.db, hash))
            .await
    }

    async fn delete_internal_credential(&self, hash: &str) -> Result<()> {
        self.gated(records::delete_internal_credential(&self.db, hash))
            .await
    }

    async fn delete_stale_internal_credentials(&self, cutoff: i64) -> Result<u64> {
        self.gated(records::delete_stale_internal_credentials(&self.db, cutoff))
            .await
    }

    async fn any_human_user(&self) -> Result<bool> {
        self.gated(users::any_human_user(&self.db)).await
    }

    async fn user_by_token(&self, token_hash: &str) -> Result<Option<UserRecord>> {
        self.lookups.user(token_hash).await
    }

    async fn install_token(&self) -> Result<Option<InstallTokenRecord>> {
        self.gated(users::install_token(&self.db)).await
    }

    async fn insert_install_token(&self, hash: &str, issued_at: i64) -> Result<bool> {
        self.gated(users::insert_install_token(&self.db, hash, issued_at))
            .await
    }

    async fn replace_install_token(&self, hash: &str, issued_at: i64) -> Result<bool> {
        self.gated(users::replace_install_token(&self.db, hash, issued_at))
            .await
    }

    async fn consume_install_token(
        &self,
        hash: &str,
        now: i64,
        admin: &NewAdmin,
        groups: &[&str],
    ) -> Result<InstallOutcome> {
        self.gated(users::consume_install_token(
            &self.db, hash, now, admin, groups,
        ))
        .await
    }

    async fn insert_workspace(&self, workspace: &WorkspaceRecord) -> Result<bool> {
        self.gated(workspaces::insert(&self.db, workspace)).await
    }

    async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRecord>> {
        self.gated(workspaces::by_id(&self.db, id)).await
    }

    async fn workspace_by_registration(&self, hash: &str) -> Result<Option<WorkspaceRecord>> {
        self.gated(workspaces::by_registration(&self.db, hash))
            .await
    }

    async fn workspace_by_auth(&self, hash: &str) -> Result<Option<WorkspaceRecord>> {
        self.lookups.workspace(hash).await
    }

    async fn record_registration(
        &self,
        id: &str,
        now: i64,
        auth: AuthTokenChange<'_>,
    ) -> Result<bool> {
        self.gated(workspaces::record_registration(&self.db, id, now, auth))
            .await
    }

    fn pool_usage(&self) -> Option<(u32, usize)> {
        // The pool getters panic on the other backend: ask which it is first.
        match self.db.get_database_backend() {
            DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                Some((pool.size(), pool.num_idle()))
            }
            DbBackend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                Some((pool.size(), pool.num_idle()))
            }
            _ => None,
        }
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        let write = batch::Write::Audit(record.clone());
        self.writes.write(write).await.map(drop)
    }

    async fn recent_audit(&self, limit: u64) -> Result<Vec<AuditRecord>> {
        self.gated(records::recent_audit(&self.db, limit)).await
    }
}
