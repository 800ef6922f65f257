//! Internal credentials: one row per running process that minted one, kept
//! alive by its heartbeat.

use sea_orm::sea_query::{Cond, Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::entities::internal_credential;
use super::{DbResult, only_row};
use crate::store::InternalCredentialRecord;

pub(super) async fn upsert_internal_credential(
    db: &impl ConnectionTrait,
    record: &InternalCredentialRecord,
) -> DbResult<()> {
    internal_credential::Entity::insert(internal_credential::ActiveModel {
        hash: Set(record.hash.clone()),
        instance_id: Set(record.instance_id.clone()),
        created_at: Set(record.created_at),
        heartbeat_at: Set(record.heartbeat_at),
        revoked_at: Set(None),
    })
    .on_conflict(
        OnConflict::column(internal_credential::Column::Hash)
            .update_column(internal_credential::Column::HeartbeatAt)
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub(super) async fn find_internal_credential(
    db: &impl ConnectionTrait,
    hash: &str,
) -> DbResult<Option<InternalCredentialRecord>> {
    let select = internal_credential::Entity::find_by_id(hash.to_owned());
    Ok(only_row(select, db).await?.map(record))
}

/// Marks revoked, at `now`, the credential whose hash begins with the 16
/// hex digits `id_hex` of its public id, unless it was; returns its row.
pub(super) async fn revoke_internal_credential(
    db: &impl ConnectionTrait,
    id_hex: &str,
    now: i64,
) -> DbResult<Option<InternalCredentialRecord>> {
    // A prefix of the key, not an expression on it: the index answers it.
    let (low, high) = (id_hex.to_owned(), format!("{id_hex}g"));
    let of_id = || {
        Cond::all()
            .add(internal_credential::Column::Hash.gte(low.as_str()))
            .add(internal_credential::Column::Hash.lt(high.as_str()))
    };
    internal_credential::Entity::update_many()
        .col_expr(internal_credential::Column::RevokedAt, Expr::value(now))
        .filter(of_id())
        .filter(internal_credential::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    let select = internal_credential::Entity::find().filter(of_id());
    Ok(only_row(select, db).await?.map(record))
}

fn record(row: internal_credential::Model) -> InternalCredentialRecord {
    InternalCredentialRecord {
        hash: row.hash,
        instance_id: row.instance_id,
        created_at: row.created_at,
        heartbeat_at: row.heartbeat_at,
        revoked_at: row.revoked_at,
    }
}

pub(super) async fn delete_internal_credential(
    db: &impl ConnectionTrait,
    hash: &str,
) -> DbResult<()> {
    internal_credential::Entity::delete_by_id(hash.to_owned())
        .exec(db)
        .await?;
    Ok(())
}

pub(super) async fn delete_stale_internal_credentials(
    db: &impl ConnectionTrait,
    cutoff: i64,
) -> DbResult<u64> {
    let result = internal_credential::Entity::delete_many()
        .filter(internal_credential::Column::HeartbeatAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
