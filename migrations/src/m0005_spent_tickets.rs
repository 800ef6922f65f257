//! Tombstones of spent tickets: a ticket presented again after it was
//! consumed (or spent by a purpose mismatch) is told apart from one never
//! issued, and its first consumer is named, until it would have expired.

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
                    .table(SpentTickets::Table)
                    .col(text(SpentTickets::Hash).primary_key())
                    .col(big_integer(SpentTickets::SpentAt))
                    .col(text(SpentTickets::SpentBy))
                    .col(text(SpentTickets::Peer))
                    .col(big_integer(SpentTickets::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_spent_tickets_expires_at")
                    .table(SpentTickets::Table)
                    .col(SpentTickets::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SpentTickets::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SpentTickets {
    Table,
    Hash,
    SpentAt,
    SpentBy,
    Peer,
    ExpiresAt,
}
