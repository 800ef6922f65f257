//! Invited users: created with a one-shot invite, redeemed exactly once.

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait, TryInsertResult,
};

use super::entities::{credential, group_member, user};
use super::{DbResult, credentials, users};
use crate::store::{CredentialKind, CredentialRecord, NewUser, Redemption, UserKind, UserRecord};

pub(super) async fn invite_user(
    db: &DatabaseConnection,
    new: &NewUser,
    groups: &[&str],
    invite: &CredentialRecord,
) -> DbResult<bool> {
    let txn = db.begin().await?;
    // The write first: on SQLite it takes the write lock before any read,
    // so a write committed meanwhile cannot make this transaction's
    // snapshot stale.
    let row = users::new_user(
        &new.id,
        &new.email,
        &new.display_name,
        new.kind,
        new.created_at,
    );
    let inserted = user::Entity::insert(row)
        .on_conflict_do_nothing_on([user::Column::Email])
        .exec_without_returning(&txn)
        .await?;
    let twins = user::Entity::find()
        .filter(email_is(&new.email))
        .all(&txn)
        .await?;
    if !matches!(inserted, TryInsertResult::Inserted(1)) || twins.len() > 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    users::add_to_groups(&txn, &new.id, groups, new.created_at).await?;
    credentials::insert(&txn, invite).await?;
    txn.commit().await?;
    Ok(true)
}

pub(super) async fn user_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> DbResult<Option<UserRecord>> {
    let select = user::Entity::find().filter(email_is(email));
    match super::only_row(select, db).await? {
        Some(row) => Ok(Some(users::with_groups(db, row).await?)),
        None => Ok(None),
    }
}

pub(super) async fn insert_user_credential(
    db: &DatabaseConnection,
    token: &CredentialRecord,
    minted_with: Option<&str>,
) -> DbResult<bool> {
    let txn = db.begin().await?;
    // The write first (it takes SQLite's write lock); then the credential
    // it was minted with and the user's row, each locked (on PostgreSQL)
    // against a concurrent revocation or disable, which either waits for
    // this token and revokes it too, or is seen here.
    credentials::insert(&txn, token).await?;
    let parent_live = match minted_with {
        Some(parent) => credentials::is_live(&txn, parent, token.created_at).await?,
        None => true,
    };
    if !parent_live || enabled_human(&txn, &token.subject).await?.is_none() {
        txn.rollback().await?;
        return Ok(false);
    }
    txn.commit().await?;
    Ok(true)
}

/// The user `id` if it is an enabled human, its row locked (on PostgreSQL)
/// until the transaction ends.
async fn enabled_human(db: &impl ConnectionTrait, id: &str) -> DbResult<Option<user::Model>> {
    let select = user::Entity::find_by_id(id.to_owned()).lock_shared();
    let row = super::only_row(select, db).await?;
    Ok(row.filter(|row| row.kind == UserKind::Human.as_str() && row.disabled_at.is_none()))
}

pub(super) async fn enable_user(db: &impl ConnectionTrait, id: &str) -> DbResult<bool> {
    let enabled = user::Entity::update_many()
        .col_expr(user::Column::DisabledAt, Expr::value(None::<i64>))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::DisabledAt.is_not_null())
        .exec(db)
        .await?;
    Ok(enabled.rows_affected == 1)
}

/// The user's e-mail is `email`, both lower-cased: a row from before that
/// rule (or a service user) must not get a twin that differs only in case.
fn email_is(email: &str) -> sea_orm::sea_query::SimpleExpr {
    Expr::expr(Func::lower(Expr::col(user::Column::Email))).eq(email.to_lowercase())
}

pub(super) async fn redeem_invite(
    db: &DatabaseConnection,
    invite_hash: &str,
    now: i64,
    token: &CredentialRecord,
    admin_group: &str,
) -> DbResult<Redemption> {
    let txn = db.begin().await?;
    // The claim comes first: it takes the write lock, so of racing
    // redemptions one claims and the others find the invite spent.
    let claimed = credential::Entity::update_many()
        .col_expr(credential::Column::RevokedAt, Expr::value(now))
        .col_expr(credential::Column::LastUsedAt, Expr::value(now))
        .filter(credential::Column::Hash.eq(invite_hash))
        .filter(credential::Column::Kind.eq(CredentialKind::Invite.as_str()))
        .filter(credential::Column::Subject.eq(token.subject.as_str()))
        .filter(credential::Column::RevokedAt.is_null())
        .filter(credential::Column::ExpiresAt.gt(now))
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(Redemption::Spent);
    }
    let invite = credentials::by_hash(&txn, invite_hash)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the claimed invite".into()))?;
    if !is_enabled_admin(&txn, &invite.created_by, admin_group).await? {
        txn.rollback().await?;
        return Ok(Redemption::InviterNotAdmin);
    }
    let Some(invited) = enabled_human(&txn, &token.subject).await? else {
        txn.rollback().await?;
        return Ok(Redemption::UserDisabled);
    };
    credentials::insert(&txn, token).await?;
    let user = users::with_groups(&txn, invited).await?;
    txn.commit().await?;
    Ok(Redemption::Redeemed(user))
}

/// True when the user with `email` is an enabled human in `admin_group`.
async fn is_enabled_admin(
    db: &impl ConnectionTrait,
    email: &str,
    admin_group: &str,
) -> DbResult<bool> {
    let select = user::Entity::find().filter(user::Column::Email.eq(email));
    let Some(row) = super::only_row(select, db).await? else {
        return Ok(false);
    };
    if row.kind != UserKind::Human.as_str() || row.disabled_at.is_some() {
        return Ok(false);
    }
    let member = group_member::Entity::find_by_id((row.id, admin_group.to_owned()));
    Ok(super::only_row(member, db).await?.is_some())
}
