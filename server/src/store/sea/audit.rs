//! The audit log: appended by the group commit (`batching/writes.rs`).

use sea_orm::sea_query::Cond;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::DbResult;
use super::batching::{pg_arrays, sqlite_json};
use super::entities::audit::{self, Column};
use crate::store::{AuditEntry, AuditQuery, AuditRecord};

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
    Ok(rows.into_iter().map(|row| entry(row).record).collect())
}

/// The entries `query` selects, newest first (by `(at, id)` descending,
/// which the index on `at` serves).
pub(super) async fn list(
    db: &impl ConnectionTrait,
    query: &AuditQuery,
) -> DbResult<Vec<AuditEntry>> {
    let mut select = audit::Entity::find();
    let exact = [
        (Column::Actor, &query.actor),
        (Column::CredentialId, &query.credential_id),
        (Column::Action, &query.action),
    ];
    for (column, value) in exact {
        if let Some(value) = value {
            select = select.filter(column.eq(value.as_str()));
        }
    }
    if let Some(since) = query.since {
        select = select.filter(Column::At.gte(since));
    }
    if let Some(until) = query.until {
        select = select.filter(Column::At.lt(until));
    }
    if let Some((at, id)) = query.before {
        select = select.filter(
            Cond::any()
                .add(Column::At.lt(at))
                .add(Cond::all().add(Column::At.eq(at)).add(Column::Id.lt(id))),
        );
    }
    let rows = select
        .order_by_desc(Column::At)
        .order_by_desc(Column::Id)
        .limit(query.limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(entry).collect())
}

fn entry(row: audit::Model) -> AuditEntry {
    AuditEntry {
        id: row.id,
        record: AuditRecord {
            at: row.at,
            actor: row.actor,
            action: row.action,
            resource: row.resource,
            outcome: row.outcome,
            credential_id: row.credential_id,
            peer: row.peer,
        },
    }
}
