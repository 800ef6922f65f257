//! Workspaces: registration and auth tokens (hashed) and the inbound secret
//! (plain text: the platform must read it back for its forward calls).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Workspaces::Table)
                    .col(text(Workspaces::Id).primary_key())
                    .col(text(Workspaces::Name))
                    // NULL for legacy workspaces provisioned before secrets existed.
                    .col(text_null(Workspaces::InboundSecret))
                    .col(text(Workspaces::RegistrationHash).unique_key())
                    .col(text_null(Workspaces::AuthHash))
                    .col(big_integer(Workspaces::CreatedAt))
                    .col(big_integer_null(Workspaces::RegisteredAt))
                    .col(big_integer_null(Workspaces::LastRegisteredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_workspaces_auth_hash")
                    .table(Workspaces::Table)
                    .col(Workspaces::AuthHash)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Workspaces::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    Id,
    Name,
    InboundSecret,
    RegistrationHash,
    AuthHash,
    CreatedAt,
    RegisteredAt,
    LastRegisteredAt,
}
