//! Users, their groups and access tokens, and the install token.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Statement, TransactionTrait, TryInsertResult,
};

use super::DbResult;
use super::credentials;
use super::entities::{group_member, install_token, user};
use crate::store::{
    CredentialKind, CredentialState, InstallOutcome, InstallTokenRecord, NewAdmin, NewUser,
    UserKind, UserRecord,
};

/// Primary key of the single install-token row.
const INSTALL_ID: &str = "install";

impl UserKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            UserKind::Service => "service",
            UserKind::Human => "human",
        }
    }
}

pub(super) async fn ensure_user(
    db: &impl ConnectionTrait,
    new: &NewUser,
    groups: &[&str],
) -> DbResult<Option<UserRecord>> {
    let (email, now) = (new.email.as_str(), new.created_at);
    user::Entity::insert(new_user(&new.id, email, &new.display_name, new.kind, now))
        .on_conflict_do_nothing_on([user::Column::Email])
        .exec(db)
        .await?;
    let select = user::Entity::find().filter(user::Column::Email.eq(email));
    let row = super::only_row(select, db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(email.to_owned()))?;
    // A row of another kind holding the e-mail is never taken over (nor
    // given the groups): a service must not become a human's account.
    if kind_of(&row.kind) != new.kind {
        return Ok(None);
    }
    add_to_groups(db, &row.id, groups, now).await?;
    with_groups(db, row).await.map(Some)
}

pub(super) async fn any_human_user(db: &impl ConnectionTrait) -> DbResult<bool> {
    let human = user::Entity::find()
        .filter(user::Column::Kind.eq(UserKind::Human.as_str()))
        .one(db)
        .await?;
    Ok(human.is_some())
}

/// The user of each access token hash, in order, with the token's standing
/// (`None` for a hash no access token has): one query for them all,
/// VerifyBearer's hot path (see `batching/lookups.rs`).
pub(super) async fn users_by_tokens(
    db: &impl ConnectionTrait,
    hashes: &[String],
) -> DbResult<Vec<Option<(UserRecord, CredentialState)>>> {
    let (condition, hashes_param) = super::batching::any_of(db, "c.hash", hashes);
    // The user and one row per group. `$1` is a placeholder on SQLite and
    // PostgreSQL alike; the kind is a constant of ours, not input.
    let sql = format!(
        "SELECT c.hash, u.id, u.email, u.display_name, u.kind, u.disabled_at, \
         c.expires_at, c.revoked_at, g.group_name \
         FROM credentials c JOIN users u ON u.id = c.subject \
         LEFT JOIN group_members g ON g.user_id = u.id \
         WHERE {condition} AND c.kind = '{kind}' ORDER BY c.hash, g.group_name",
        kind = CredentialKind::UserAccess.as_str(),
    );
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, [hashes_param]);
    let mut found: HashMap<String, (UserRecord, CredentialState)> = HashMap::new();
    for row in db.query_all_raw(statement).await? {
        let hash: String = row.try_get_by_index(0)?;
        let (user, _) = match found.entry(hash) {
            Entry::Occupied(user) => user.into_mut(),
            Entry::Vacant(slot) => slot.insert((
                UserRecord {
                    id: row.try_get_by_index(1)?,
                    email: row.try_get_by_index(2)?,
                    display_name: row.try_get_by_index(3)?,
                    kind: kind_of(&row.try_get_by_index::<String>(4)?),
                    groups: Vec::new(),
                    disabled_at: row.try_get_by_index(5)?,
                },
                CredentialState {
                    expires_at: row.try_get_by_index(6)?,
                    revoked_at: row.try_get_by_index(7)?,
                },
            )),
        };
        if let Some(group) = row.try_get_by_index::<Option<String>>(8)? {
            user.groups.push(group);
        }
    }
    Ok(hashes.iter().map(|hash| found.get(hash).cloned()).collect())
}

pub(super) async fn install_token(
    db: &impl ConnectionTrait,
) -> DbResult<Option<InstallTokenRecord>> {
    let row = install_token::Entity::find_by_id(INSTALL_ID.to_owned())
        .one(db)
        .await?;
    Ok(row.map(|row| InstallTokenRecord {
        hash: row.hash,
        issued_at: row.issued_at,
        consumed_at: row.consumed_at,
    }))
}

pub(super) async fn insert_install_token(
    db: &impl ConnectionTrait,
    hash: &str,
    issued_at: i64,
) -> DbResult<bool> {
    let inserted = install_token::Entity::insert(pending_install_token(hash, issued_at))
        .on_conflict_do_nothing_on([install_token::Column::Id])
        .exec_without_returning(db)
        .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(1)))
}

pub(super) async fn replace_install_token(
    db: &impl ConnectionTrait,
    hash: &str,
    issued_at: i64,
) -> DbResult<bool> {
    // Only a pending token (or none) is replaced: a consumed one stays
    // consumed even if a regeneration races the consumption.
    let written = install_token::Entity::insert(pending_install_token(hash, issued_at))
        .on_conflict(
            OnConflict::column(install_token::Column::Id)
                .update_columns([
                    install_token::Column::Hash,
                    install_token::Column::IssuedAt,
                    install_token::Column::ConsumedAt,
                ])
                .action_and_where(
                    Expr::col((install_token::Entity, install_token::Column::ConsumedAt)).is_null(),
                )
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(written == 1)
}

pub(super) async fn consume_install_token(
    db: &DatabaseConnection,
    hash: &str,
    now: i64,
    admin: &NewAdmin,
    groups: &[&str],
) -> DbResult<InstallOutcome> {
    let txn = db.begin().await?;
    // The claim comes first: it takes the write lock, so concurrent callers
    // queue here and all but one find the token already consumed.
    let claimed = install_token::Entity::update_many()
        .col_expr(install_token::Column::ConsumedAt, Expr::value(now))
        .filter(install_token::Column::Id.eq(INSTALL_ID))
        .filter(install_token::Column::Hash.eq(hash))
        .filter(install_token::Column::ConsumedAt.is_null())
        .exec(&txn)
        .await?;
    // A human is looked for after the claim either way: a caller that lost
    // the race to the right token is told the admin exists, not that its
    // token was wrong.
    let human_exists = any_human_user(&txn).await?;
    if claimed.rows_affected != 1 || human_exists {
        txn.rollback().await?;
        return Ok(if human_exists {
            InstallOutcome::HumanExists
        } else {
            InstallOutcome::NotPending
        });
    }
    let row = user::Entity::insert(new_user(
        &admin.id,
        &admin.email,
        &admin.display_name,
        UserKind::Human,
        now,
    ))
    .exec_with_returning(&txn)
    .await?;
    add_to_groups(&txn, &row.id, groups, now).await?;
    credentials::insert(&txn, &admin.token).await?;
    let admin = with_groups(&txn, row).await?;
    txn.commit().await?;
    Ok(InstallOutcome::Created(admin))
}

pub(super) fn new_user(
    id: &str,
    email: &str,
    display_name: &str,
    kind: UserKind,
    now: i64,
) -> user::ActiveModel {
    user::ActiveModel {
        id: Set(id.to_owned()),
        email: Set(email.to_owned()),
        display_name: Set(display_name.to_owned()),
        kind: Set(kind.as_str().to_owned()),
        created_at: Set(now),
        disabled_at: Set(None),
    }
}

fn pending_install_token(hash: &str, issued_at: i64) -> install_token::ActiveModel {
    install_token::ActiveModel {
        id: Set(INSTALL_ID.to_owned()),
        hash: Set(hash.to_owned()),
        issued_at: Set(issued_at),
        consumed_at: Set(None),
    }
}

pub(super) async fn add_to_groups(
    db: &impl ConnectionTrait,
    user_id: &str,
    groups: &[&str],
    now: i64,
) -> DbResult<()> {
    for group in groups {
        group_member::Entity::insert(group_member::ActiveModel {
            user_id: Set(user_id.to_owned()),
            group_name: Set((*group).to_owned()),
            added_at: Set(now),
        })
        .on_conflict_do_nothing()
        .exec(db)
        .await?;
    }
    Ok(())
}

pub(super) async fn with_groups(
    db: &impl ConnectionTrait,
    row: user::Model,
) -> DbResult<UserRecord> {
    let groups = group_member::Entity::find()
        .filter(group_member::Column::UserId.eq(row.id.as_str()))
        .order_by_asc(group_member::Column::GroupName)
        .all(db)
        .await?
        .into_iter()
        .map(|member| member.group_name)
        .collect();
    let kind = kind_of(&row.kind);
    Ok(UserRecord {
        id: row.id,
        email: row.email,
        display_name: row.display_name,
        kind,
        groups,
        disabled_at: row.disabled_at,
    })
}

/// The kind stored in `users.kind`. Anything but exactly "human" counts as
/// a service user: an unexpected value must never make a human appear.
fn kind_of(stored: &str) -> UserKind {
    if stored == UserKind::Human.as_str() {
        UserKind::Human
    } else {
        UserKind::Service
    }
}
