//! The last use of each configured service secret (`service_secret_uses`):
//! one row per public id, only ever moved forward.

use sea_orm::{ConnectionTrait, Statement, Value};

use super::DbResult;

/// Moves each secret's last use forward to the given time, never back (a
/// late flush, or another replica's, changes nothing).
const UPSERT: &str = "INSERT INTO service_secret_uses (id, last_used_at) VALUES ($1, $2) \
     ON CONFLICT (id) DO UPDATE SET last_used_at = excluded.last_used_at \
     WHERE excluded.last_used_at > service_secret_uses.last_used_at";

/// Records `uses` (public id, time); returns the rows changed. A handful
/// of configured secrets, so one short statement each, in id order (so
/// replicas flushing at once never deadlock).
pub(super) async fn record(db: &impl ConnectionTrait, uses: &[(String, i64)]) -> DbResult<u64> {
    let mut uses = uses.to_vec();
    uses.sort_unstable();
    let mut changed = 0;
    for (id, at) in uses {
        let values: [Value; 2] = [id.into(), at.into()];
        let statement = Statement::from_sql_and_values(db.get_database_backend(), UPSERT, values);
        changed += db.execute_raw(statement).await?.rows_affected();
    }
    Ok(changed)
}

/// The last use of each of `ids` that was ever recorded.
pub(super) async fn last_used(
    db: &impl ConnectionTrait,
    ids: &[String],
) -> DbResult<Vec<(String, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let (condition, param) = super::batching::any_of(db, "id", ids);
    let sql = format!("SELECT id, last_used_at FROM service_secret_uses WHERE {condition}");
    let statement = Statement::from_sql_and_values(backend, sql, [param]);
    let rows = db.query_all_raw(statement).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "last_used_at")?)))
        .collect()
}
