//! Workspaces.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    FromQueryResult, QueryFilter, QueryResult, Statement, TransactionTrait, TryInsertResult, Value,
};
use tessera_client::Secret;

use super::entities::workspace::{self, Column};
use super::{DbResult, credentials};
use crate::store::{
    CredentialRecord, CredentialState, InboundRotation, NextInboundSecret, WorkspaceRecord,
};

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
        ..Default::default()
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

async fn find(
    db: &impl ConnectionTrait,
    condition: impl sea_orm::sea_query::IntoCondition,
) -> DbResult<Option<WorkspaceRecord>> {
    let row = super::only_row(workspace::Entity::find().filter(condition), db).await?;
    Ok(row.map(record))
}

pub(super) fn record(row: workspace::Model) -> WorkspaceRecord {
    let next = match (row.next_inbound_secret, row.next_inbound_secret_id) {
        (Some(secret), Some(id)) => Some(NextInboundSecret {
            secret: Secret::new(secret),
            id,
            started_at: row.rotation_started_at.unwrap_or_default(),
        }),
        _ => None,
    };
    let previous = row
        .previous_inbound_secret
        .zip(row.previous_valid_until)
        .map(|(secret, until)| (Secret::new(secret), until));
    WorkspaceRecord {
        id: row.id,
        name: row.name,
        inbound_secret: row.inbound_secret.map(Secret::new),
        rotation: InboundRotation { next, previous },
        registration_hash: row.registration_hash,
        auth_hash: row.auth_hash,
        created_at: row.created_at,
        registered_at: row.registered_at,
        last_registered_at: row.last_registered_at,
    }
}
