//! Workspaces.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement,
    TryInsertResult, UpdateMany,
};
use tessera_client::Secret;

use super::DbResult;
use super::entities::workspace::{self, Column};
use crate::store::{AuthTokenChange, WorkspaceRecord};

pub(super) async fn insert(db: &impl ConnectionTrait, record: &WorkspaceRecord) -> DbResult<bool> {
    let inserted = workspace::Entity::insert(workspace::ActiveModel {
        id: Set(record.id.clone()),
        name: Set(record.name.clone()),
        inbound_secret: Set(record
            .inbound_secret
            .as_ref()
            .map(|s| s.expose().to_owned())),
        registration_hash: Set(record.registration_hash.clone()),
        auth_hash: Set(record.auth_hash.clone()),
        created_at: Set(record.created_at),
        registered_at: Set(record.registered_at),
        last_registered_at: Set(record.last_registered_at),
    })
    .on_conflict_do_nothing_on([Column::Id])
    .exec_without_returning(db)
    .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(1)))
}

pub(super) async fn by_id(
    db: &impl ConnectionTrait,
    id: &str,
) -> DbResult<Option<WorkspaceRecord>> {
    find(db, Column::Id.eq(id)).await
}

pub(super) async fn by_registration(
    db: &impl ConnectionTrait,
    hash: &str,
) -> DbResult<Option<WorkspaceRecord>> {
    find(db, Column::RegistrationHash.eq(hash)).await
}

/// The workspace of each auth token hash, in order, in one query (see
/// `batching/lookups.rs`).
pub(super) async fn by_auth_hashes(
    db: &impl ConnectionTrait,
    hashes: &[String],
) -> DbResult<Vec<Option<WorkspaceRecord>>> {
    let (condition, hashes_param) = super::batching::any_of(db, "auth_hash", hashes);
    let sql = format!("SELECT * FROM workspaces WHERE {condition}");
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, [hashes_param]);
    let rows = workspace::Entity::find()
        .from_raw_sql(statement)
        .all(db)
        .await?;
    let found: HashMap<String, WorkspaceRecord> = rows
        .into_iter()
        .filter_map(|row| Some((row.auth_hash.clone()?, record(row))))
        .collect();
    Ok(hashes.iter().map(|hash| found.get(hash).cloned()).collect())
}

pub(super) async fn record_registration(
    db: &impl ConnectionTrait,
    id: &str,
    now: i64,
    auth: AuthTokenChange<'_>,
) -> DbResult<bool> {
    let written = match auth {
        AuthTokenChange::Keep => false,
        AuthTokenChange::SetIfNone(hash) => {
            // Conditional on NULL, so of two racing first registrations
            // only one token is ever valid.
            let update = registration(id, now)
                .col_expr(Column::AuthHash, Expr::value(hash))
                .filter(Column::AuthHash.is_null());
            update.exec(db).await?.rows_affected == 1
        }
        AuthTokenChange::Replace { new, current } => {
            // Compare-and-set: of racing rotations only one wins, and a
            // rotation decided on a token already replaced writes nothing.
            let update = registration(id, now).col_expr(Column::AuthHash, Expr::value(new));
            let update = match current {
                Some(current) => update.filter(Column::AuthHash.eq(current)),
                None => update.filter(Column::AuthHash.is_null()),
            };
            update.exec(db).await?.rows_affected == 1
        }
    };
    if !written {
        registration(id, now).exec(db).await?;
    }
    Ok(written)
}

/// An update of `id` that records a registration at `now`.
fn registration(id: &str, now: i64) -> UpdateMany<workspace::Entity> {
    workspace::Entity::update_many()
        .col_expr(
            Column::RegisteredAt,
            Func::coalesce([Expr::col(Column::RegisteredAt), Expr::value(now)]).into(),
        )
        .col_expr(Column::LastRegisteredAt, Expr::value(now))
        .filter(Column::Id.eq(id))
}

async fn find(
    db: &impl ConnectionTrait,
    condition: impl sea_orm::sea_query::IntoCondition,
) -> DbResult<Option<WorkspaceRecord>> {
    let row = super::only_row(workspace::Entity::find().filter(condition), db).await?;
    Ok(row.map(record))
}

fn record(row: workspace::Model) -> WorkspaceRecord {
    WorkspaceRecord {
        id: row.id,
        name: row.name,
        inbound_secret: row.inbound_secret.map(Secret::new),
        registration_hash: row.registration_hash,
        auth_hash: row.auth_hash,
        created_at: row.created_at,
        registered_at: row.registered_at,
        last_registered_at: row.last_registered_at,
    }
}
