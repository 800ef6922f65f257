//! When each configured service secret (by its public id, `svc_…`) was
//! last presented, to the minute, shared by every replica: an operator
//! retires the previous secret of a rotation once nobody presents it.
//! Service secrets are configuration, not issued credentials, so they have
//! no record in `credentials`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ServiceSecretUses::Table)
                    .col(text(ServiceSecretUses::Id).primary_key())
                    .col(big_integer(ServiceSecretUses::LastUsedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ServiceSecretUses::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ServiceSecretUses {
    Table,
    /// The secret's public id: `svc_` and 16 hex digits of its SHA-256.
    Id,
    LastUsedAt,
}
