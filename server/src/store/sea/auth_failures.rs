//! Failed authentications counted per key and minute in one table, so that
//! replicas on one PostgreSQL database share one failure budget. Minutes
//! are the database's: replicas whose clocks disagree still count in the
//! same window. On SQLite one process owns the database and keeps its own
//! counts in memory; nothing is written here.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};

use super::DbResult;
use crate::store::FailureTally;

/// Bounds on how long a statement here may wait for a lock or run: a table
/// locked by an operator, a migration or a dead connection fails the write
/// (each replica keeps its own budget meanwhile) rather than holding a
/// pooled connection, and a shutdown that waits for it, indefinitely.
const TIMEOUTS: &str = "SET LOCAL lock_timeout = '2s'; SET LOCAL statement_timeout = '2s'";

/// Keys added by one statement at most.
const KEYS_PER_STATEMENT: usize = 4_096;

/// Adds the counts to each key's current minute (starting a new minute, and
/// keeping the last one as `previous`, when the database's clock has moved
/// on) and returns every key's counts after the addition.
const ADD: &str = "WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS ms) \
    INSERT INTO auth_failures AS t (key, window_start, count, previous) \
    SELECT f.key, clock.ms / 60000, f.count, 0 \
    FROM clock, UNNEST($1::text[], $2::int8[]) AS f(key, count) \
    ON CONFLICT (key) DO UPDATE SET \
    previous = CASE WHEN t.window_start = excluded.window_start THEN t.previous \
        WHEN t.window_start = excluded.window_start - 1 THEN t.count ELSE 0 END, \
    count = CASE WHEN t.window_start = excluded.window_start THEN t.count + excluded.count \
        ELSE excluded.count END, \
    window_start = excluded.window_start \
    RETURNING t.key, t.count, t.previous, (SELECT ms FROM clock) - t.window_start * 60000";

/// Deletes at most `$1` keys that failed in neither this minute nor the
/// one before. The age is tested again on the deleted rows themselves: a
/// row another replica refreshed while this statement waited for its lock
/// is then seen as refreshed and kept (the subquery saw it before).
const DELETE_STALE: &str = "WITH clock AS \
    (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 / 60000 - 1 AS stale) \
    DELETE FROM auth_failures USING clock WHERE window_start < clock.stale AND key IN \
    (SELECT key FROM auth_failures, clock WHERE window_start < clock.stale LIMIT $1)";

pub(super) async fn add_auth_failures(
    db: &DatabaseConnection,
    failures: &[(String, u32)],
) -> DbResult<Vec<FailureTally>> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(Vec::new());
    }
    let txn = db.begin().await?;
    txn.execute_unprepared(TIMEOUTS).await?;
    // In key order: two replicas' upserts then lock the rows they share in
    // the same order, and cannot deadlock each other.
    let mut failures = failures.to_vec();
    failures.sort_unstable();
    let mut tallies = Vec::with_capacity(failures.len());
    for chunk in failures.chunks(KEYS_PER_STATEMENT) {
        let keys: Vec<String> = chunk.iter().map(|(key, _)| key.clone()).collect();
        let counts: Vec<i64> = chunk.iter().map(|(_, count)| i64::from(*count)).collect();
        let values: Vec<Value> = vec![keys.into(), counts.into()];
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, ADD, values);
        for row in txn.query_all_raw(statement).await? {
            tallies.push(FailureTally {
                key: row.try_get_by_index(0)?,
                count: row.try_get_by_index(1)?,
                previous: row.try_get_by_index(2)?,
                elapsed_ms: row.try_get_by_index(3)?,
            });
        }
    }
    txn.commit().await?;
    Ok(tallies)
}

pub(super) async fn delete_stale_auth_failures(
    db: &DatabaseConnection,
    limit: u64,
) -> DbResult<u64> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(0);
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement =
        Statement::from_sql_and_values(DbBackend::Postgres, DELETE_STALE, [limit.into()]);
    let txn = db.begin().await?;
    txn.execute_unprepared(TIMEOUTS).await?;
    let deleted = txn.execute_raw(statement).await?.rows_affected();
    txn.commit().await?;
    Ok(deleted)
}
