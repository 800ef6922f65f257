//! Opening the database: pool sizes, SQLite's settings, and the workers of
//! the group commit and the batched lookups.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use super::DbResult;
use super::batching::{Lookups, Writer};
use super::gate::Gate;
use crate::store::{Backend, DatabaseUrl};

/// How long a caller waits for a pooled connection before the database
/// counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default pool sizes.
const SQLITE_POOL: u32 = 8;
const POSTGRES_POOL: u32 = 16;
/// Prepared statements kept per SQLite connection. The hot lookups and the
/// group commit's statements are a handful, each one SQL text for any
/// number of rows (`json_each`).
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
/// Where SQLite keeps temporary b-trees: the group commit's statements
/// unpack their rows into some (`batching/sqlite_json.rs`), which in a
/// temporary file cost a write call per page.
const SQLITE_TEMP_STORE: &str = "memory";

/// An open database: the pool, the gate in front of it, and the workers.
pub(super) struct Opened {
    pub(super) db: DatabaseConnection,
    pub(super) gate: Gate,
    pub(super) writer: Writer,
    pub(super) lookups: Lookups,
}

/// Connects to `url` (`sqlite:…` creates the file if missing) with at most
/// `max_connections` pooled connections. sea-orm gets the URL without its
/// password, which goes into sqlx's options directly (see `store/database_url.rs`).
pub(super) async fn open(url: &DatabaseUrl, max_connections: Option<u32>) -> DbResult<Opened> {
    let mut options = ConnectOptions::new(url.without_password());
    options
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_timeout(ACQUIRE_TIMEOUT)
        .sqlx_logging(false);
    if let Some(password) = url.password().cloned() {
        options.map_sqlx_postgres_opts(move |opts| opts.password(password.expose()));
    }
    let sqlite = url.backend() == Backend::Sqlite;
    let default_pool = if sqlite { SQLITE_POOL } else { POSTGRES_POOL };
    let pool = max_connections.unwrap_or(default_pool);
    options.max_connections(pool);
    let gate = Gate::new(pool, ACQUIRE_TIMEOUT);
    let (db, writer) = if sqlite {
        // A connection to a local file does not go stale: checking one
        // before each use would only cost two thread hand-offs.
        options.test_before_acquire(false);
        #[cfg(unix)]
        super::sqlite_file::prepare(url.without_password())?;
        let writer = sqlite_writer(options.clone());
        options.map_sqlx_sqlite_opts(|opts| sqlite_options(opts, SQLITE_READER_CACHE_KIB));
        let db = Database::connect(options).await?;
        // The writer's connection is its own, outside the pool and the gate.
        let writer = Database::connect(writer).await?;
        (db, Writer::start(&writer, SQLITE_WRITERS, None))
    } else {
        options.test_before_acquire_if_idle_for(POSTGRES_IDLE_CHECK);
        let db = Database::connect(options).await?;
        let writers = usize::try_from(pool / POSTGRES_WRITERS_PER_POOL).unwrap_or(1);
        let writer = Writer::start(&db, writers, Some(gate.clone()));
        (db, writer)
    };
    let lookup_workers = usize::try_from(pool / LOOKUP_WORKERS_PER_POOL).unwrap_or(1);
    let lookups = Lookups::start(&db, &gate, lookup_workers);
    Ok(Opened {
        db,
        gate,
        writer,
        lookups,
    })
}

/// Options every SQLite connection shares, with a page cache of `cache_kib`.
fn sqlite_options(opts: SqliteConnectOptions, cache_kib: u32) -> SqliteConnectOptions {
    opts.create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .statement_cache_capacity(SQLITE_STATEMENT_CACHE)
        .pragma("cache_size", format!("-{cache_kib}"))
        .pragma("temp_store", SQLITE_TEMP_STORE)
}

/// The group commit's own connection on SQLite (see `SQLITE_WRITER_CACHE_KIB`).
fn sqlite_writer(mut options: ConnectOptions) -> ConnectOptions {
    options
        .max_connections(1)
        .map_sqlx_sqlite_opts(|opts| sqlite_options(opts, SQLITE_WRITER_CACHE_KIB));
    options
}
