//! [`Store`] on sea-orm: SQLite (default) or PostgreSQL, chosen by URL.
//!
//! The trait implementations (`store.rs`, `credential_store.rs`,
//! `workspace_store.rs`) only delegate, and map errors once (`error.rs`): the queries live beside their tables (`tickets.rs`,
//! `internal_credentials.rs`, `audit.rs`, `users.rs`, `workspaces.rs`);
//! ticket and audit writes go through the group commit and VerifyBearer's
//! token lookups through the batched lookups (`batching/`); every statement
//! on the pool waits for its connection at the gate (`gate.rs`).

mod audit;
mod auth_failures;
mod batching;
mod connect;
mod credential_store;
mod credential_upkeep;
mod credentials;
mod entities;
mod error;
mod gate;
mod internal_credentials;
mod invites;
mod ping;
mod revocation;
mod sealed;
mod service_secret_uses;
#[cfg(unix)]
mod sqlite_file;
mod store;
mod tickets;
mod users;
mod workspace_changes;
mod workspace_store;
mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, Select, Statement,
};
use tessera_migrations::{Migrator, MigratorTrait};

use self::batching::{Lookups, Write, Writer, Written};
use self::error::store_error;
use self::gate::Gate;
pub use self::sealed::Rewrapped;
use super::sealing::Keyring;
use super::{
    AuditEntry, AuditQuery, AuditRecord, AuditTap, CredentialRecord, CredentialState,
    DatabaseClock, DatabaseUrl, FailureTally, InstallOutcome, InstallTokenRecord,
    InternalCredentialRecord, NewAdmin, NewUser, Redemption, Result, Store, StoreError,
    SubjectRevoked, TicketRecord, TicketTake, UserRecord, Verdict,
};

/// What the queries of this module return; [`SeaStore`] maps the error,
/// once, into a [`StoreError`] (`error.rs`).
type DbResult<T> = std::result::Result<T, DbErr>;

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
) -> DbResult<Option<E::Model>> {
    Ok(select.all(db).await?.pop())
}

/// Runs a bounded `DELETE` whose `$1` is a time and `$2` the most rows it
/// may delete; returns how many it deleted.
async fn delete_chunk(
    db: &impl ConnectionTrait,
    sql: &str,
    before: i64,
    limit: u64,
) -> DbResult<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let backend = db.get_database_backend();
    let statement = Statement::from_sql_and_values(backend, sql, [before.into(), limit.into()]);
    Ok(db.execute_raw(statement).await?.rows_affected())
}

/// The sea-orm implementation of [`Store`].
#[derive(Clone, Debug)]
pub struct SeaStore {
    db: DatabaseConnection,
    gate: Gate,
    writer: Arc<Writer>,
    lookups: Arc<Lookups>,
    clock: DatabaseClock,
    keys: Arc<Keyring>,
}

impl SeaStore {
    /// Connects to `url` (`sqlite:…` creates the file if missing,
    /// `postgres://…`) with the default pool size.
    pub async fn connect(url: &str) -> Result<Self> {
        let url = DatabaseUrl::parse(url).map_err(|err| StoreError::Db(err.to_string()))?;
        Self::connect_with_pool(&url, None).await
    }

    /// Connects with at most `max_connections` pooled connections (default:
    /// 8 on SQLite, 16 on PostgreSQL, so several replicas stay below
    /// PostgreSQL's default limit of 100). Errors name the URL, masked.
    pub async fn connect_with_pool(
        url: &DatabaseUrl,
        max_connections: Option<u32>,
    ) -> Result<Self> {
        let opened = connect::open(url, max_connections)
            .await
            .map_err(|err| match store_error(&err) {
                StoreError::Unavailable(cause) => {
                    StoreError::Unavailable(format!("{url}: {cause}"))
                }
                StoreError::Db(cause) | StoreError::Sealing(cause) => {
                    StoreError::Db(format!("{url}: {cause}"))
                }
            })?;
        let store = Self {
            db: opened.db,
            gate: opened.gate,
            writer: Arc::new(opened.writer),
            lookups: Arc::new(opened.lookups),
            clock: DatabaseClock::default(),
            keys: Arc::default(),
        };
        store.ping().await?;
        Ok(store)
    }

    /// The same store, reading this process's time from `clock` (one whose
    /// process clock is skewed, in tests of replicas that disagree).
    pub async fn with_clock(mut self, clock: DatabaseClock) -> Result<Self> {
        self.clock = clock;
        self.ping().await?;
        Ok(self)
    }

    /// Sends every audit entry committed from now on (by this store and
    /// its clones) to `tap` too; false, and `tap` ignored, when one was
    /// set already.
    pub fn tap_audit(&self, tap: Arc<dyn AuditTap>) -> bool {
        self.writer.set_tap(tap)
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
                Err(err) => return Err(store_error(&err)),
            }
        }
    }

    /// Closes the connection pool.
    pub async fn close(self) {
        drop(self.writer);
        drop(self.lookups);
        if let Err(err) = self.db.close().await {
            tracing::warn!(error = %err, "closing the database pool failed");
        }
    }

    /// Number of stored tickets, expired or not. For tests.
    pub async fn count_tickets_for_tests(&self) -> Result<u64> {
        self.gated(tickets::count_tickets(&self.db)).await
    }

    /// The newest `limit` audit entries, newest first. For tests.
    pub async fn recent_audit_for_tests(&self, limit: u64) -> Result<Vec<AuditRecord>> {
        self.gated(audit::recent_audit(&self.db, limit)).await
    }

    /// Runs `query` on a pooled connection, once the gate lets it.
    async fn gated<T>(&self, query: impl Future<Output = DbResult<T>>) -> Result<T> {
        let _permit = self.gate.enter().await?;
        query.await.map_err(|err| store_error(&err))
    }

    /// Hands `write` to the group commit.
    async fn write(&self, write: Write) -> Result<Written> {
        self.writer.write(write).await
    }
}
