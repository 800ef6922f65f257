//! The records of issued credentials.

use sea_orm::sea_query::{Cond, Expr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use super::DbResult;
use super::entities::credential::{self, Column};
use super::entities::{user, workspace};
use crate::store::{CredentialKind, CredentialQuery, CredentialRecord, SubjectRevoked};

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

pub(super) async fn by_hash(
    db: &impl ConnectionTrait,
    hash: &str,
) -> DbResult<Option<CredentialRecord>> {
    let select = credential::Entity::find().filter(Column::Hash.eq(hash));
    super::only_row(select, db).await?.map(record).transpose()
}

pub(super) async fn live_admin_credentials(
    db: &impl ConnectionTrait,
    admin_group: &str,
    now: i64,
) -> DbResult<Vec<CredentialRecord>> {
    let sql = format!(
        "SELECT c.* FROM credentials c JOIN users u ON u.id = c.subject \
         JOIN group_members g ON g.user_id = u.id \
         WHERE g.group_name = $1 AND c.kind = '{kind}' AND c.revoked_at IS NULL \
         AND (c.expires_at IS NULL OR c.expires_at > $2) \
         AND u.kind = 'human' AND u.disabled_at IS NULL",
        kind = CredentialKind::UserAccess.as_str(),
    );
    let backend = db.get_database_backend();
    let statement = Statement::from_sql_and_values(backend, sql, [admin_group.into(), now.into()]);
    let rows = credential::Entity::find()
        .from_raw_sql(statement)
        .all(db)
        .await?;
    rows.into_iter().map(record).collect()
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

pub(super) async fn revoke(
    db: &DatabaseConnection,
    id: &str,
    now: i64,
) -> DbResult<Option<CredentialRecord>> {
    let txn = db.begin().await?;
    credential::Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    let found = by_id(&txn, id).await?;
    if let Some(found) = found
        .as_ref()
        .filter(|found| found.kind == CredentialKind::WorkspaceAuth)
    {
        clear_auth_token(&txn, &found.hash).await?;
    }
    txn.commit().await?;
    Ok(found)
}

pub(super) async fn revoke_subject(
    db: &DatabaseConnection,
    subject: &str,
    now: i64,
    disable: bool,
) -> DbResult<SubjectRevoked> {
    let txn = db.begin().await?;
    let user = super::only_row(user::Entity::find_by_id(subject.to_owned()), &txn).await?;
    let revoke = || {
        credential::Entity::update_many()
            .col_expr(Column::RevokedAt, Expr::value(now))
            .filter(Column::RevokedAt.is_null())
    };
    let mut revoked = revoke()
        .filter(Column::Subject.eq(subject))
        .exec(&txn)
        .await?
        .rows_affected;
    if let Some(user) = &user {
        let invites = revoke()
            .filter(Column::Kind.eq(CredentialKind::Invite.as_str()))
            .filter(Column::CreatedBy.eq(user.email.as_str()));
        revoked += invites.exec(&txn).await?.rows_affected;
    }
    let cleared = workspace::Entity::update_many()
        .col_expr(workspace::Column::AuthHash, Expr::value(None::<String>))
        .filter(workspace::Column::Id.eq(subject))
        .exec(&txn)
        .await?;
    let outcome = match (&user, disable) {
        (None, true) => SubjectRevoked::NotAUser,
        (None, false) if revoked == 0 && cleared.rows_affected == 0 => SubjectRevoked::Unknown,
        (Some(_), true) => {
            user::Entity::update_many()
                .col_expr(user::Column::DisabledAt, Expr::value(now))
                .filter(user::Column::Id.eq(subject))
                .filter(user::Column::DisabledAt.is_null())
                .exec(&txn)
                .await?;
            SubjectRevoked::Revoked(revoked)
        }
        _ => SubjectRevoked::Revoked(revoked),
    };
    if matches!(outcome, SubjectRevoked::Revoked(_)) {
        txn.commit().await?;
    } else {
        txn.rollback().await?;
    }
    Ok(outcome)
}

/// Marks the record of the credential with `hash` revoked at `now`, unless
/// it was already.
pub(super) async fn revoke_hash(db: &impl ConnectionTrait, hash: &str, now: i64) -> DbResult<()> {
    credential::Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(now))
        .filter(Column::Hash.eq(hash))
        .filter(Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// A workspace whose auth token was revoked has none, so that its next
/// registration (with its registration token) issues a fresh one.
async fn clear_auth_token(db: &impl ConnectionTrait, hash: &str) -> DbResult<()> {
    workspace::Entity::update_many()
        .col_expr(workspace::Column::AuthHash, Expr::value(None::<String>))
        .filter(workspace::Column::AuthHash.eq(hash))
        .exec(db)
        .await?;
    Ok(())
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
