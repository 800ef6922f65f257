//! Revocations: one credential, or everything of a subject. Those that
//! must keep an admin able to log in count the enabled admins' live access
//! tokens before and after, in a transaction that concurrent ones wait
//! for, so two revocations of the last two admin tokens cannot both pass.

use sea_orm::sea_query::{Cond, Expr, IntoCondition};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QuerySelect, Statement, TransactionTrait,
};

use super::DbResult;
use super::credentials::by_id;
use super::entities::credential::{self, Column};
use super::entities::{user, workspace};
use crate::store::{CredentialKind, Revocation, SubjectRevoked, UserKind};

/// Key of the PostgreSQL advisory lock that orders guarded revocations.
const REVOCATION_LOCK: i64 = 0x7465_7373_6572_6100;

pub(super) async fn revoke(
    db: &DatabaseConnection,
    id: &str,
    now: i64,
    keep_admins_of: Option<&str>,
) -> DbResult<Revocation> {
    let txn = begin_in_turn(db).await?;
    let before = live_admin_tokens(&txn, keep_admins_of, now).await?;
    let Some(found) = by_id(&txn, id).await? else {
        txn.rollback().await?;
        return Ok(Revocation::Unknown);
    };
    // A workspace's row before its token's, in the order a registration
    // takes them, so the two never wait for each other.
    if matches!(
        found.kind,
        CredentialKind::WorkspaceAuth | CredentialKind::WorkspaceRegistration
    ) {
        lock_workspace(&txn, &found.subject).await?;
    }
    revoke_where(&txn, now, Column::Id.eq(id)).await?;
    if found.kind == CredentialKind::WorkspaceAuth {
        clear_auth_token(&txn, &found.hash).await?;
    }
    if before > 0 && live_admin_tokens(&txn, keep_admins_of, now).await? == 0 {
        txn.rollback().await?;
        return Ok(Revocation::WouldLeaveNoAdmin);
    }
    let revoked = by_id(&txn, id).await?.unwrap_or(found);
    txn.commit().await?;
    Ok(Revocation::Revoked(revoked))
}

/// Every lock is taken in one order — the workspace row, the credential
/// rows, the user row — the order of a registration, of a new access token
/// (its credential, then its user) and of a redeemed invite, so none of
/// them waits for this in a cycle. The credentials are revoked twice: a
/// token committed while the first pass (or the disable) waited for its
/// parent's (or user's) row is revoked by the second.
pub(super) async fn revoke_subject(
    db: &DatabaseConnection,
    subject: &str,
    now: i64,
    disable: bool,
    keep_admins_of: &str,
) -> DbResult<SubjectRevoked> {
    let txn = begin_in_turn(db).await?;
    let before = live_admin_tokens(&txn, Some(keep_admins_of), now).await?;
    let user = super::only_row(user::Entity::find_by_id(subject.to_owned()), &txn).await?;
    let human = user
        .as_ref()
        .is_some_and(|user| user.kind == UserKind::Human.as_str());
    if disable && !human {
        txn.rollback().await?;
        return Ok(SubjectRevoked::NotAUser);
    }
    let cleared = workspace::Entity::update_many()
        .col_expr(workspace::Column::AuthHash, Expr::value(None::<String>))
        .filter(workspace::Column::Id.eq(subject))
        .exec(&txn)
        .await?;
    let mut revoked = revoke_all_of(&txn, subject, user.as_ref(), now).await?;
    if disable {
        user::Entity::update_many()
            .col_expr(user::Column::DisabledAt, Expr::value(now))
            .filter(user::Column::Id.eq(subject))
            .filter(user::Column::DisabledAt.is_null())
            .exec(&txn)
            .await?;
    }
    // Again: a credential minted with one of these (or redeemed) that
    // committed while the first pass waited for its row is seen now.
    revoked += revoke_all_of(&txn, subject, user.as_ref(), now).await?;
    let outcome = if user.is_none() && revoked == 0 && cleared.rows_affected == 0 {
        SubjectRevoked::Unknown
    } else {
        SubjectRevoked::Revoked(revoked)
    };
    let orphaned = matches!(outcome, SubjectRevoked::Revoked(_))
        && before > 0
        && live_admin_tokens(&txn, Some(keep_admins_of), now).await? == 0;
    match outcome {
        SubjectRevoked::Revoked(_) if !orphaned => txn.commit().await?,
        _ => txn.rollback().await?,
    }
    Ok(if orphaned {
        SubjectRevoked::WouldLeaveNoAdmin
    } else {
        outcome
    })
}

/// Marks the record of the credential with `hash` revoked at `now`, unless
/// it was already; returns how many records changed (0 or 1).
pub(super) async fn revoke_hash(db: &impl ConnectionTrait, hash: &str, now: i64) -> DbResult<u64> {
    revoke_where(db, now, Column::Hash.eq(hash)).await
}

/// Revokes, at `now`, the live credentials of `subject` and the unredeemed
/// invites `user` (when the subject is one) created; returns how many.
async fn revoke_all_of(
    txn: &DatabaseTransaction,
    subject: &str,
    user: Option<&user::Model>,
    now: i64,
) -> DbResult<u64> {
    let mut revoked = revoke_where(txn, now, Column::Subject.eq(subject)).await?;
    if let Some(user) = user {
        let invites = Cond::all()
            .add(Column::Kind.eq(CredentialKind::Invite.as_str()))
            .add(Column::CreatedBy.eq(user.email.as_str()));
        revoked += revoke_where(txn, now, invites).await?;
    }
    Ok(revoked)
}

/// Marks revoked at `now` the live credentials `condition` selects.
pub(super) async fn revoke_where(
    db: &impl ConnectionTrait,
    now: i64,
    condition: impl IntoCondition,
) -> DbResult<u64> {
    let revoked = credential::Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(now))
        .filter(Column::RevokedAt.is_null())
        .filter(condition)
        .exec(db)
        .await?;
    Ok(revoked.rows_affected)
}

/// Locks workspace `id`'s row until the transaction ends.
async fn lock_workspace(txn: &DatabaseTransaction, id: &str) -> DbResult<()> {
    let select = workspace::Entity::find_by_id(id.to_owned()).lock_exclusive();
    super::only_row(select, txn).await?;
    Ok(())
}

/// A transaction that revocations enter one at a time: on PostgreSQL by an
/// advisory lock, on SQLite by taking the write lock first (a write that
/// changes nothing), so its reads see every revocation committed before.
async fn begin_in_turn(db: &DatabaseConnection) -> DbResult<DatabaseTransaction> {
    let txn = db.begin().await?;
    let sql = match txn.get_database_backend() {
        DbBackend::Postgres => format!("SELECT pg_advisory_xact_lock({REVOCATION_LOCK})"),
        _ => "UPDATE credentials SET revoked_at = revoked_at WHERE 1 = 0".to_owned(),
    };
    txn.execute_unprepared(&sql).await?;
    Ok(txn)
}

/// How many live access tokens the enabled human members of `admin_group`
/// hold (0 without a group: nothing to keep).
async fn live_admin_tokens(
    db: &impl ConnectionTrait,
    admin_group: Option<&str>,
    now: i64,
) -> DbResult<usize> {
    let Some(admin_group) = admin_group else {
        return Ok(0);
    };
    let sql = format!(
        "SELECT COUNT(*) FROM credentials c JOIN users u ON u.id = c.subject \
         JOIN group_members g ON g.user_id = u.id \
         WHERE g.group_name = $1 AND c.kind = '{kind}' AND c.revoked_at IS NULL \
         AND (c.expires_at IS NULL OR c.expires_at > $2) \
         AND u.kind = 'human' AND u.disabled_at IS NULL",
        kind = CredentialKind::UserAccess.as_str(),
    );
    let backend = db.get_database_backend();
    let statement = Statement::from_sql_and_values(backend, sql, [admin_group.into(), now.into()]);
    let count: Option<i64> = match db.query_one_raw(statement).await? {
        Some(row) => row.try_get_by_index(0)?,
        None => None,
    };
    Ok(count.map_or(0, |count| usize::try_from(count).unwrap_or(usize::MAX)))
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
