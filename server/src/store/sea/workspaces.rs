//! Workspaces.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    FromQueryResult, QueryFilter, QueryResult, Statement, TransactionTrait, TryInsertResult,
    UpdateMany, Value,
};
use tessera_client::Secret;

use super::entities::workspace::{self, Column};
use super::{DbResult, credentials, revocation};
use crate::store::{AuthTokenChange, CredentialRecord, CredentialState, WorkspaceRecord};

/// A workspace found by one of its tokens, and that token's standing.
type WithState = (WorkspaceRecord, CredentialState);

pub(super) async fn insert(
    db: &DatabaseConnection,
    record: &WorkspaceRecord,
    registration: &CredentialRecord,
) -> DbResult<bool> {
    let txn = db.begin().await?;
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
    .exec_without_returning(&txn)
    .await?;
    let inserted = matches!(inserted, TryInsertResult::Inserted(1));
    if inserted {
        credentials::insert(&txn, registration).await?;
    }
    txn.commit().await?;
    Ok(inserted)
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
) -> DbResult<Option<WithState>> {
    let condition = "w.registration_hash = $1";
    let found = with_state(db, "registration_hash", condition, hash.into()).await?;
    Ok(found.into_iter().next().map(|(_, found)| found))
}

/// The workspace of each auth token hash, in order, with the token's
/// standing, in one query (see `batching/lookups.rs`).
pub(super) async fn by_auth_hashes(
    db: &impl ConnectionTrait,
    hashes: &[String],
) -> DbResult<Vec<Option<WithState>>> {
    let (condition, hashes_param) = super::batching::any_of(db, "w.auth_hash", hashes);
    let found: HashMap<String, WithState> = with_state(db, "auth_hash", &condition, hashes_param)
        .await?
        .into_iter()
        .collect();
    Ok(hashes.iter().map(|hash| found.get(hash).cloned()).collect())
}

/// The workspaces whose token in `column` meets `condition` (on `$1`),
/// each keyed by that token's hash, with the token's standing from its
/// credential record.
async fn with_state(
    db: &impl ConnectionTrait,
    column: &str,
    condition: &str,
    param: Value,
) -> DbResult<Vec<(String, WithState)>> {
    let sql = format!(
        "SELECT w.*, c.expires_at AS token_expires_at, c.revoked_at AS token_revoked_at \
         FROM workspaces w JOIN credentials c ON c.hash = w.{column} WHERE {condition}"
    );
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, [param]);
    let rows = db.query_all_raw(statement).await?;
    rows.iter()
        .map(|row| {
            let hash: String = row.try_get("", column)?;
            Ok((
                hash,
                (
                    record(workspace::Model::from_query_result(row, "")?),
                    state(row)?,
                ),
            ))
        })
        .collect()
}

fn state(row: &QueryResult) -> DbResult<CredentialState> {
    Ok(CredentialState {
        expires_at: row.try_get("", "token_expires_at")?,
        revoked_at: row.try_get("", "token_revoked_at")?,
    })
}

pub(super) async fn record_registration(
    db: &DatabaseConnection,
    id: &str,
    now: i64,
    bearer: &str,
    auth: AuthTokenChange<'_>,
) -> DbResult<Option<bool>> {
    let txn = db.begin().await?;
    // The workspace row first (a write, and its lock), as a revocation
    // takes it: then the bearer is checked under its lock, so a
    // registration either commits before a revocation of its workspace or
    // bearer, which then revokes what it issued, or sees it and stops.
    let written = match auth {
        AuthTokenChange::Keep => None,
        AuthTokenChange::SetIfNone(new) => {
            // Conditional on NULL, so of two racing first registrations
            // only one token is ever valid.
            let update = registration(id, now)
                .col_expr(Column::AuthHash, Expr::value(new.hash.as_str()))
                .filter(Column::AuthHash.is_null());
            (update.exec(&txn).await?.rows_affected == 1).then_some(new)
        }
        AuthTokenChange::Replace { new, current } => {
            // Compare-and-set: of racing rotations only one wins, and a
            // rotation decided on a token already replaced writes nothing.
            let update =
                registration(id, now).col_expr(Column::AuthHash, Expr::value(new.hash.as_str()));
            let update = match current {
                Some(current) => update.filter(Column::AuthHash.eq(current)),
                None => update.filter(Column::AuthHash.is_null()),
            };
            (update.exec(&txn).await?.rows_affected == 1).then_some(new)
        }
    };
    if written.is_none() {
        registration(id, now).exec(&txn).await?;
    }
    if !credentials::is_live(&txn, bearer, now).await? {
        txn.rollback().await?;
        return Ok(None);
    }
    if let Some(new) = written {
        if let AuthTokenChange::Replace {
            current: Some(current),
            ..
        } = auth
        {
            revocation::revoke_hash(&txn, current, now).await?;
        }
        credentials::insert(&txn, new).await?;
    }
    txn.commit().await?;
    Ok(Some(written.is_some()))
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
