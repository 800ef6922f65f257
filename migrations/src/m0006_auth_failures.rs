//! Failed authentications counted per key (a peer address or a credential's
//! public id) and per minute, shared by every replica on one database, so
//! that the failure budget is the deployment's and not each replica's.
//! One row per key: the current minute's count and the one before it.

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
                    .table(AuthFailures::Table)
                    .col(text(AuthFailures::Key).primary_key())
                    .col(big_integer(AuthFailures::WindowStart))
                    .col(big_integer(AuthFailures::Count))
                    .col(big_integer(AuthFailures::Previous))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_failures_window_start")
                    .table(AuthFailures::Table)
                    .col(AuthFailures::WindowStart)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuthFailures::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuthFailures {
    Table,
    Key,
    /// The minute (since the epoch, by the database's clock) `count` is of.
    WindowStart,
    Count,
    /// The count of the minute before `window_start`.
    Previous,
}
