//! The audit log: appended by the group commit (`batching/writes.rs`).

use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, QueryOrder, QuerySelect};

use super::DbResult;
use super::batching::{pg_arrays, sqlite_json};
use super::entities::audit;
use crate::store::AuditRecord;

/// Appends audit entries in one statement (see `pg_arrays.rs` and
/// `sqlite_json.rs`).
pub(super) async fn append_audits(
    db: &impl ConnectionTrait,
    records: &[&AuditRecord],
) -> DbResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        return pg_arrays::append_audits(db, records).await;
    }
    sqlite_json::append_audits(db, records).await
}

/// Deletes at most `limit` entries older than `cutoff`, the oldest first
/// (see [`super::delete_chunk`]).
pub(super) async fn delete_audit_before(
    db: &impl ConnectionTrait,
    cutoff: i64,
    limit: u64,
) -> DbResult<u64> {
    let sql = "DELETE FROM audit_log WHERE id IN \
               (SELECT id FROM audit_log WHERE at < $1 ORDER BY at, id LIMIT $2)";
    super::delete_chunk(db, sql, cutoff, limit).await
}

/// The newest `limit` entries, newest first (for tests).
pub(super) async fn recent_audit(
    db: &impl ConnectionTrait,
    limit: u64,
) -> DbResult<Vec<AuditRecord>> {
    let rows = audit::Entity::find()
        .order_by_desc(audit::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| AuditRecord {
            at: row.at,
            actor: row.actor,
            action: row.action,
            resource: row.resource,
            outcome: row.outcome,
            credential_id: row.credential_id,
            peer: row.peer,
        })
        .collect())
}
