//! Internal credentials: one row per running process that minted one, kept
//! alive by its heartbeat.

use sea_orm::sea_query::OnConflict;
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
    let row = only_row(select, db).await?;
    Ok(row.map(|row| InternalCredentialRecord {
        hash: row.hash,
        instance_id: row.instance_id,
        created_at: row.created_at,
        heartbeat_at: row.heartbeat_at,
    }))
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
