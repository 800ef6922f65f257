//! Changes to a workspace: registrations, rotations of its inbound secret,
//! a new registration token, deletion. Each takes the workspace's row
//! first (by writing it), then credential rows: the lock order of
//! `revocation.rs`, so none of them waits for another in a cycle.

use sea_orm::sea_query::{Cond, Expr, Func, SimpleExpr};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait, UpdateMany,
};
use tessera_client::Secret;

use super::entities::credential;
use super::entities::workspace::{self, Column};
use super::workspaces::by_id;
use super::{DbResult, credentials, revocation};
use crate::store::{
    AuthTokenChange, Confirmation, CredentialKind, CredentialRecord, Registered, RotationStart,
};

pub(super) async fn record_registration(
    db: &DatabaseConnection,
    id: &str,
    now: i64,
    bearer: &str,
    auth: AuthTokenChange<'_>,
    confirmation: Option<Confirmation<'_>>,
) -> DbResult<Option<Registered>> {
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
    let present = written.is_some() || registration(id, now).exec(&txn).await?.rows_affected == 1;
    if !present || !credentials::is_live(&txn, bearer, now).await? {
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
    let promoted = match confirmation {
        Some(confirmation) => promote(&txn, id, confirmation).await?,
        None => false,
    };
    let Some(workspace) = by_id(&txn, id).await? else {
        txn.rollback().await?;
        return Ok(None);
    };
    txn.commit().await?;
    Ok(Some(Registered {
        auth_token_written: written.is_some(),
        promoted,
        workspace,
    }))
}

/// Makes the next inbound secret current, if it is the one the runtime
/// confirmed holding; the current one becomes the previous, accepted until
/// the confirmation's deadline. In one statement, so of two racing
/// confirmations one promotes and the other finds nothing to do.
async fn promote(
    txn: &DatabaseTransaction,
    id: &str,
    confirmation: Confirmation<'_>,
) -> DbResult<bool> {
    // The right-hand sides read the row as it was before the update.
    let update = workspace::Entity::update_many()
        .col_expr(
            Column::PreviousInboundSecret,
            Expr::col(Column::InboundSecret),
        )
        .col_expr(
            Column::PreviousValidUntil,
            Expr::value(confirmation.previous_valid_until),
        )
        .col_expr(Column::InboundSecret, Expr::col(Column::NextInboundSecret))
        .col_expr(Column::NextInboundSecret, null())
        .col_expr(Column::NextInboundSecretId, null())
        .col_expr(Column::RotationStartedAt, no_time())
        .filter(Column::Id.eq(id))
        .filter(Column::NextInboundSecretId.eq(confirmation.held_id));
    Ok(update.exec(txn).await?.rows_affected == 1)
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

pub(super) async fn start_inbound_rotation(
    db: &DatabaseConnection,
    id: &str,
    next: &Secret,
    next_id: &str,
    now: i64,
    force: bool,
) -> DbResult<RotationStart> {
    let txn = db.begin().await?;
    let Some(before) = lock(&txn, id).await? else {
        txn.rollback().await?;
        return Ok(RotationStart::Unknown);
    };
    let in_grace = before.previous_valid_until.filter(|until| *until > now);
    if let (Some(until), false) = (in_grace, force) {
        txn.rollback().await?;
        return Ok(RotationStart::InGrace(until));
    }
    let mut update = workspace::Entity::update_many()
        .col_expr(Column::NextInboundSecret, Expr::value(next.expose()))
        .col_expr(Column::NextInboundSecretId, Expr::value(next_id))
        .col_expr(Column::RotationStartedAt, Expr::value(now))
        .filter(Column::Id.eq(id));
    if in_grace.is_some() {
        update = update
            .col_expr(Column::PreviousInboundSecret, null())
            .col_expr(Column::PreviousValidUntil, no_time());
    }
    update.exec(&txn).await?;
    txn.commit().await?;
    Ok(RotationStart::Started {
        replaced_unconfirmed: before.next_inbound_secret_id.is_some(),
        ended_grace: in_grace.is_some(),
    })
}

pub(super) async fn expire_previous_inbound_secrets(
    db: &DatabaseConnection,
    now: i64,
    limit: u64,
) -> DbResult<Vec<String>> {
    let ended = Column::PreviousValidUntil.lte(now);
    let ids: Vec<String> = workspace::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(ended.clone())
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    let mut expired = Vec::with_capacity(ids.len());
    for id in ids {
        // Conditional, so a sweep of another replica (or a rotation that
        // came in between) is never reported twice.
        let cleared = workspace::Entity::update_many()
            .col_expr(Column::PreviousInboundSecret, null())
            .col_expr(Column::PreviousValidUntil, no_time())
            .filter(Column::Id.eq(id.as_str()))
            .filter(ended.clone())
            .exec(db)
            .await?;
        if cleared.rows_affected == 1 {
            expired.push(id);
        }
    }
    Ok(expired)
}

pub(super) async fn reissue_registration_token(
    db: &DatabaseConnection,
    id: &str,
    new: &CredentialRecord,
    revoke_auth_tokens: bool,
    now: i64,
) -> DbResult<Option<u64>> {
    let txn = db.begin().await?;
    let Some(before) = lock(&txn, id).await? else {
        txn.rollback().await?;
        return Ok(None);
    };
    let mut update = workspace::Entity::update_many()
        .col_expr(Column::RegistrationHash, Expr::value(new.hash.as_str()))
        .filter(Column::Id.eq(id));
    if revoke_auth_tokens {
        update = update.col_expr(Column::AuthHash, null());
    }
    update.exec(&txn).await?;
    let mut revoked = revocation::revoke_hash(&txn, &before.registration_hash, now).await?;
    if revoke_auth_tokens {
        let kinds = [CredentialKind::WorkspaceAuth];
        revoked += revocation::revoke_where(&txn, now, of_workspace(id, &kinds)).await?;
    }
    credentials::insert(&txn, new).await?;
    txn.commit().await?;
    Ok(Some(revoked))
}

pub(super) async fn delete_workspace(
    db: &DatabaseConnection,
    id: &str,
    now: i64,
) -> DbResult<Option<u64>> {
    let txn = db.begin().await?;
    if lock(&txn, id).await?.is_none() {
        txn.rollback().await?;
        return Ok(None);
    }
    let kinds = [
        CredentialKind::WorkspaceRegistration,
        CredentialKind::WorkspaceAuth,
    ];
    let revoked = revocation::revoke_where(&txn, now, of_workspace(id, &kinds)).await?;
    workspace::Entity::delete_by_id(id.to_owned())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Some(revoked))
}

/// Takes workspace `id`'s row for the transaction — by a write that
/// changes nothing, which also takes SQLite's write lock before any read —
/// and returns it as it is now; `None` when there is none.
async fn lock(txn: &DatabaseTransaction, id: &str) -> DbResult<Option<workspace::Model>> {
    let touched = workspace::Entity::update_many()
        .col_expr(Column::Id, Expr::col(Column::Id))
        .filter(Column::Id.eq(id))
        .exec(txn)
        .await?;
    if touched.rows_affected == 0 {
        return Ok(None);
    }
    super::only_row(workspace::Entity::find_by_id(id.to_owned()), txn).await
}

/// The credentials of workspace `id` of one of `kinds`.
fn of_workspace(id: &str, kinds: &[CredentialKind]) -> Cond {
    Cond::all()
        .add(credential::Column::Subject.eq(id))
        .add(credential::Column::Kind.is_in(kinds.iter().map(|kind| kind.as_str())))
}

/// NULL for a text column (PostgreSQL wants the type of a bound NULL).
fn null() -> SimpleExpr {
    Expr::value(None::<String>)
}

/// NULL for a time column.
fn no_time() -> SimpleExpr {
    Expr::value(None::<i64>)
}
