//! Tickets, internal credentials and the audit log.

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use crate::store::entities::{audit, internal_credential, ticket};
use crate::store::{AuditRecord, InternalCredentialRecord, Result, TicketRecord};

/// Stores new tickets in one statement (on PostgreSQL, see `unnest`).
pub(super) async fn insert_tickets(
    db: &impl ConnectionTrait,
    records: &[&TicketRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        return super::unnest::insert_tickets(db, records).await;
    }
    let rows = records.iter().map(|record| ticket::ActiveModel {
        hash: Set(record.hash.clone()),
        user_id: Set(record.user_id.clone()),
        provider: Set(record.provider.clone()),
        purpose: Set(record.purpose.clone()),
        minted_at: Set(record.minted_at),
        expires_at: Set(record.expires_at),
    });
    ticket::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Deletes the tickets with these hashes and returns the rows that existed.
pub(super) async fn take_tickets(
    db: &impl ConnectionTrait,
    hashes: &[&str],
) -> Result<Vec<TicketRecord>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    // DELETE … RETURNING: each row goes to exactly one statement, on SQLite
    // and PostgreSQL alike, with no read-then-write window.
    let rows = if db.get_database_backend() == DbBackend::Postgres {
        super::unnest::take_tickets(db, hashes).await?
    } else {
        ticket::Entity::delete_many()
            .filter(ticket::Column::Hash.is_in(hashes.iter().copied()))
            .exec_with_returning(db)
            .await?
    };
    Ok(rows
        .into_iter()
        .map(|row| TicketRecord {
            hash: row.hash,
            user_id: row.user_id,
            provider: row.provider,
            purpose: row.purpose,
            minted_at: row.minted_at,
            expires_at: row.expires_at,
        })
        .collect())
}

pub(super) async fn delete_expired_tickets(db: &impl ConnectionTrait, now: i64) -> Result<u64> {
    let result = ticket::Entity::delete_many()
        .filter(ticket::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

pub(super) async fn count_tickets(db: &impl ConnectionTrait) -> Result<u64> {
    Ok(ticket::Entity::find().count(db).await?)
}

pub(super) async fn upsert_internal_credential(
    db: &impl ConnectionTrait,
    record: &InternalCredentialRecord,
) -> Result<()> {
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
) -> Result<Option<InternalCredentialRecord>> {
    let select = internal_credential::Entity::find_by_id(hash.to_owned());
    let row = super::only_row(select, db).await?;
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
) -> Result<()> {
    internal_credential::Entity::delete_by_id(hash.to_owned())
        .exec(db)
        .await?;
    Ok(())
}

pub(super) async fn delete_stale_internal_credentials(
    db: &impl ConnectionTrait,
    cutoff: i64,
) -> Result<u64> {
    let result = internal_credential::Entity::delete_many()
        .filter(internal_credential::Column::HeartbeatAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Appends audit entries in one statement.
pub(super) async fn append_audits(
    db: &impl ConnectionTrait,
    records: &[&AuditRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        return super::unnest::append_audits(db, records).await;
    }
    let rows = records.iter().map(|record| audit::ActiveModel {
        at: Set(record.at),
        actor: Set(record.actor.clone()),
        action: Set(record.action.clone()),
        resource: Set(record.resource.clone()),
        outcome: Set(record.outcome.clone()),
        credential_id: Set(record.credential_id.clone()),
        peer: Set(record.peer.clone()),
        ..Default::default()
    });
    audit::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub(super) async fn recent_audit(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<AuditRecord>> {
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
