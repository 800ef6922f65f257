//! The records of issued credentials.

use sea_orm::sea_query::Cond;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::DbResult;
use super::entities::credential::{self, Column};
use crate::store::{CredentialKind, CredentialQuery, CredentialRecord};

pub(super) async fn insert(db: &impl ConnectionTrait, record: &CredentialRecord) -> DbResult<()> {
    credential::Entity::insert(credential::ActiveModel {
        id: Set(record.id.clone()),
        hash: Set(record.hash.clone()),
        kind: Set(record.kind.as_str().to_owned()),
        subject: Set(record.subject.clone()),
        name: Set(record.name.clone()),
        created_at: Set(record.created_at),
        created_by: Set(record.created_by.clone()),
        expires_at: Set(record.expires_at),
        last_used_at: Set(record.last_used_at),
        revoked_at: Set(record.revoked_at),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub(super) async fn by_id(
    db: &impl ConnectionTrait,
    id: &str,
) -> DbResult<Option<CredentialRecord>> {
    let select = credential::Entity::find().filter(Column::Id.eq(id));
    super::only_row(select, db).await?.map(record).transpose()
}

/// True when credential `id` is neither revoked nor expired at `now`; its
/// row stays locked (on PostgreSQL, shared) until the transaction ends.
pub(super) async fn is_live(db: &impl ConnectionTrait, id: &str, now: i64) -> DbResult<bool> {
    let select = credential::Entity::find()
        .filter(Column::Id.eq(id))
        .lock_shared();
    let row = super::only_row(select, db).await?;
    Ok(row.is_some_and(|row| {
        row.revoked_at.is_none() && row.expires_at.is_none_or(|expires_at| expires_at > now)
    }))
}

pub(super) async fn by_hash(
    db: &impl ConnectionTrait,
    hash: &str,
) -> DbResult<Option<CredentialRecord>> {
    let select = credential::Entity::find().filter(Column::Hash.eq(hash));
    super::only_row(select, db).await?.map(record).transpose()
}

pub(super) async fn list(
    db: &impl ConnectionTrait,
    query: &CredentialQuery,
) -> DbResult<Vec<CredentialRecord>> {
    let mut select = credential::Entity::find();
    if let Some(subject) = &query.subject {
        select = select.filter(Column::Subject.eq(subject.as_str()));
    }
    if let Some(kind) = query.kind {
        select = select.filter(Column::Kind.eq(kind.as_str()));
    }
    if !query.include_revoked {
        select = select.filter(Column::RevokedAt.is_null());
    }
    if !query.include_expired {
        select = select.filter(
            Cond::any()
                .add(Column::ExpiresAt.is_null())
                .add(Column::ExpiresAt.gt(query.now)),
        );
    }
    if let Some((created_at, id)) = &query.after {
        select = select.filter(
            Cond::any().add(Column::CreatedAt.gt(*created_at)).add(
                Cond::all()
                    .add(Column::CreatedAt.eq(*created_at))
                    .add(Column::Id.gt(id.as_str())),
            ),
        );
    }
    let rows = select
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .limit(query.limit)
        .all(db)
        .await?;
    rows.into_iter().map(record).collect()
}

fn record(row: credential::Model) -> DbResult<CredentialRecord> {
    let kind = CredentialKind::from_stored(&row.kind)
        .ok_or_else(|| DbErr::Type(format!("unknown credential kind {:?}", row.kind)))?;
    Ok(CredentialRecord {
        id: row.id,
        hash: row.hash,
        kind,
        subject: row.subject,
        name: row.name,
        created_at: row.created_at,
        created_by: row.created_by,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
    })
}
