//! The first-admin install token and user access tokens.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // At most one row (`id` = 'install'): inserting it is how exactly one
        // of several booting replicas wins the right to mint.
        manager
            .create_table(
                Table::create()
                    .table(InstallToken::Table)
                    .col(text(InstallToken::Id).primary_key())
                    .col(text(InstallToken::Hash))
                    .col(big_integer(InstallToken::IssuedAt))
                    .col(big_integer_null(InstallToken::ConsumedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserTokens::Table)
                    .col(text(UserTokens::Hash).primary_key())
                    .col(text(UserTokens::UserId))
                    .col(big_integer(UserTokens::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_tokens_user_id")
                    .table(UserTokens::Table)
                    .col(UserTokens::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(InstallToken::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum InstallToken {
    Table,
    Id,
    Hash,
    IssuedAt,
    ConsumedAt,
}

#[derive(DeriveIden)]
enum UserTokens {
    Table,
    Hash,
    UserId,
    CreatedAt,
}
