//! One record for every credential Tessera issues, keyed by its public id:
//! what it is, whose it is, who made it, when it expires, when it was last
//! used and whether it was revoked. User access tokens move here from
//! `user_tokens`; workspace tokens keep their hashes on `workspaces` (the
//! registration compares and sets them there) and gain a record beside.
//! Users gain `disabled_at`, internal credentials `revoked_at` (a revoked
//! one stays refused while its process keeps heartbeating it).
//!
//! Existing user access tokens never expired; they get the default
//! lifetime (90 days) counted from the moment this migration runs.

use std::time::{SystemTime, UNIX_EPOCH};

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The default access-token lifetime the backfilled user tokens get.
const DEFAULT_LIFETIME_MS: i64 = 90 * 24 * 60 * 60 * 1000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(credentials()).await?;
        for (name, columns) in [
            ("idx_credentials_subject", vec![Credentials::Subject]),
            (
                "idx_credentials_created",
                vec![Credentials::CreatedAt, Credentials::Id],
            ),
            ("idx_credentials_expires_at", vec![Credentials::ExpiresAt]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Credentials::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(big_integer_null(Users::DisabledAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(InternalCredentials::Table)
                    .add_column(big_integer_null(InternalCredentials::RevokedAt))
                    .to_owned(),
            )
            .await?;
        backfill(manager).await?;
        manager
            .drop_table(Table::drop().table(UserTokens::Table).to_owned())
            .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "m0007_credentials cannot be undone: expiry and revocation would be lost".into(),
        ))
    }
}

fn credentials() -> TableCreateStatement {
    Table::create()
        .table(Credentials::Table)
        // The public credential id: `<tag>_` and 16 hex digits of the hash.
        .col(text(Credentials::Id).primary_key())
        .col(text(Credentials::Hash).unique_key())
        .col(text(Credentials::Kind))
        .col(text(Credentials::Subject))
        .col(text(Credentials::Name))
        .col(big_integer(Credentials::CreatedAt))
        .col(text(Credentials::CreatedBy))
        .col(big_integer_null(Credentials::ExpiresAt))
        .col(big_integer_null(Credentials::LastUsedAt))
        .col(big_integer_null(Credentials::RevokedAt))
        .to_owned()
}

/// Records for the tokens issued before this migration: user access
/// tokens (with the default lifetime from now) and workspace tokens.
async fn backfill(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    let expires_at = now + DEFAULT_LIFETIME_MS;
    let columns = "id, hash, kind, subject, name, created_at, created_by, expires_at";
    let statements = [
        format!(
            "INSERT INTO credentials ({columns}) SELECT 'usr_' || substr(hash, 1, 16), hash, \
             'user_access', user_id, '', created_at, '', {expires_at} FROM user_tokens"
        ),
        format!(
            "INSERT INTO credentials ({columns}) SELECT 'wsr_' || substr(registration_hash, 1, 16), \
             registration_hash, 'workspace_registration', id, '', created_at, '', NULL \
             FROM workspaces"
        ),
        format!(
            "INSERT INTO credentials ({columns}) SELECT 'wsa_' || substr(auth_hash, 1, 16), \
             auth_hash, 'workspace_auth', id, '', COALESCE(last_registered_at, created_at), '', \
             NULL FROM workspaces WHERE auth_hash IS NOT NULL"
        ),
    ];
    let db = manager.get_connection();
    for statement in statements {
        db.execute_unprepared(&statement).await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum Credentials {
    Table,
    Id,
    Hash,
    /// `user_access`, `workspace_registration`, `workspace_auth`, `invite`.
    Kind,
    /// The user id or workspace id the credential authenticates.
    Subject,
    /// A name its owner chose; empty when none.
    Name,
    CreatedAt,
    /// The actor (e-mail or subject) that caused it to be issued.
    CreatedBy,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    DisabledAt,
}

#[derive(DeriveIden)]
enum InternalCredentials {
    Table,
    RevokedAt,
}

#[derive(DeriveIden)]
enum UserTokens {
    Table,
}
