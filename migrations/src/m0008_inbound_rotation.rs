//! Rotation of a workspace's inbound secret: the next secret waits beside
//! the current one until the runtime confirms it holds it; the one it
//! replaced stays, for the runtime to accept, until the end of a grace
//! period. The next secret's public id is kept in clear so a confirmation
//! can be compared without reading (or decrypting) the secret.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for column in [
            text_null(Workspaces::NextInboundSecret),
            text_null(Workspaces::NextInboundSecretId),
            big_integer_null(Workspaces::RotationStartedAt),
            text_null(Workspaces::PreviousInboundSecret),
            big_integer_null(Workspaces::PreviousValidUntil),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Workspaces::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Workspaces::NextInboundSecret,
            Workspaces::NextInboundSecretId,
            Workspaces::RotationStartedAt,
            Workspaces::PreviousInboundSecret,
            Workspaces::PreviousValidUntil,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Workspaces::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    /// The secret a rotation will switch to once the runtime confirms it.
    NextInboundSecret,
    /// Public id of the next secret (`wsi_` and 16 hex of its SHA-256).
    NextInboundSecretId,
    /// When the rotation that set the next secret started.
    RotationStartedAt,
    /// The secret the last confirmed rotation replaced.
    PreviousInboundSecret,
    /// Until when (exclusive) the runtime accepts the previous secret.
    PreviousValidUntil,
}
