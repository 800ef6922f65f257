//! Writes to credential records that no request waits for: the last-used
//! times noted in memory, the pruning of ended records, and the count of
//! those about to expire.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::DbResult;
use crate::store::CredentialKind;

// One SQL text for any number of uses (an array per column on PostgreSQL,
// one JSON parameter on SQLite, as the group commit does), so that each
// connection prepares it once. A time is only ever moved forward: a late
// flush, or another replica's, never takes it back, and a use already
// recorded for its minute changes no row.
const TOUCH_PG: &str = "UPDATE credentials SET last_used_at = u.at \
    FROM UNNEST($1::text[], $2::int8[]) AS u(id, at) \
    WHERE credentials.id = u.id \
    AND (credentials.last_used_at IS NULL OR credentials.last_used_at < u.at)";

const TOUCH_SQLITE: &str = "UPDATE credentials SET last_used_at = u.at \
    FROM (SELECT value->>0 AS id, value->>1 AS at FROM json_each($1)) AS u \
    WHERE credentials.id = u.id \
    AND (credentials.last_used_at IS NULL OR credentials.last_used_at < u.at)";

// A workspace's token rows stay while the workspace holds the hash:
// registration looks the token up through its record, and a revoked one
// must go on being refused as revoked.
const DELETE_ENDED: &str = "DELETE FROM credentials WHERE id IN (SELECT c.id FROM credentials c \
    WHERE (c.revoked_at < $1 OR c.expires_at < $1) \
    AND NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.registration_hash = c.hash) \
    AND NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.auth_hash = c.hash) \
    LIMIT $2)";

const COUNT_EXPIRING: &str = "SELECT kind, COUNT(*) FROM credentials \
    WHERE revoked_at IS NULL AND expires_at > $1 AND expires_at <= $2 GROUP BY kind";

/// Sets each credential's `last_used_at` to its time in `uses`, in one
/// statement; returns the rows changed.
pub(super) async fn record_last_used(
    db: &impl ConnectionTrait,
    uses: &[(String, i64)],
) -> DbResult<u64> {
    if uses.is_empty() {
        return Ok(0);
    }
    // Rows locked in id order: replicas flushing overlapping sets cannot
    // deadlock each other on PostgreSQL.
    let mut uses = uses.to_vec();
    uses.sort_unstable();
    let backend = db.get_database_backend();
    let statement = if backend == DbBackend::Postgres {
        let (ids, times): (Vec<String>, Vec<i64>) = uses.into_iter().unzip();
        Statement::from_sql_and_values(backend, TOUCH_PG, [ids.into(), times.into()])
    } else {
        let rows = serde_json::Value::from(
            uses.iter()
                .map(|(id, at)| serde_json::json!([id, at]))
                .collect::<Vec<_>>(),
        );
        let values: [Value; 1] = [rows.to_string().into()];
        Statement::from_sql_and_values(backend, TOUCH_SQLITE, values)
    };
    Ok(db.execute_raw(statement).await?.rows_affected())
}

/// Deletes at most `limit` records of credentials revoked or expired
/// before `cutoff`, except those of a workspace's tokens it still holds.
pub(super) async fn delete_ended_before(
    db: &impl ConnectionTrait,
    cutoff: i64,
    limit: u64,
) -> DbResult<u64> {
    super::delete_chunk(db, DELETE_ENDED, cutoff, limit).await
}

/// The credentials, per kind, not revoked and expiring after `now` and
/// no later than `until`.
pub(super) async fn count_expiring(
    db: &impl ConnectionTrait,
    now: i64,
    until: i64,
) -> DbResult<Vec<(CredentialKind, u64)>> {
    let backend = db.get_database_backend();
    let statement =
        Statement::from_sql_and_values(backend, COUNT_EXPIRING, [now.into(), until.into()]);
    let mut counts = Vec::new();
    for row in db.query_all_raw(statement).await? {
        let kind: String = row.try_get_by_index(0)?;
        let count: i64 = row.try_get_by_index(1)?;
        let kind = CredentialKind::from_stored(&kind)
            .ok_or_else(|| DbErr::Type(format!("unknown credential kind {kind:?}")))?;
        counts.push((kind, u64::try_from(count).unwrap_or(0)));
    }
    Ok(counts)
}
