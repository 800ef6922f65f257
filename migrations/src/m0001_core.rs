//! Users and groups, tickets, internal credentials and the audit log.
//!
//! Times are Unix milliseconds in BIGINT columns: portable, and compared
//! directly in SQL. Secrets appear only as hex SHA-256 (`hash` columns).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // One transaction on SQLite too: a replica that loses the race to migrate
    // sees either nothing or everything.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(users()).await?;
        manager.create_table(group_members()).await?;
        manager.create_table(tickets()).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tickets_expires_at")
                    .table(Tickets::Table)
                    .col(Tickets::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager.create_table(internal_credentials()).await?;
        manager.create_table(audit_log()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            InternalCredentials::Table.into_iden(),
            Tickets::Table.into_iden(),
            GroupMembers::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

fn users() -> TableCreateStatement {
    Table::create()
        .table(Users::Table)
        .col(text(Users::Id).primary_key())
        .col(text(Users::Email).unique_key())
        .col(text(Users::DisplayName))
        // "service" for synthetic service users, "human" otherwise.
        .col(text(Users::Kind))
        .col(big_integer(Users::CreatedAt))
        .to_owned()
}

fn group_members() -> TableCreateStatement {
    Table::create()
        .table(GroupMembers::Table)
        .col(text(GroupMembers::UserId))
        .col(text(GroupMembers::GroupName))
        .col(big_integer(GroupMembers::AddedAt))
        .primary_key(
            Index::create()
                .col(GroupMembers::UserId)
                .col(GroupMembers::GroupName),
        )
        .to_owned()
}

fn tickets() -> TableCreateStatement {
    Table::create()
        .table(Tickets::Table)
        .col(text(Tickets::Hash).primary_key())
        .col(text(Tickets::UserId))
        .col(text(Tickets::Provider))
        .col(text(Tickets::Purpose))
        .col(big_integer(Tickets::MintedAt))
        .col(big_integer(Tickets::ExpiresAt))
        .to_owned()
}

fn internal_credentials() -> TableCreateStatement {
    Table::create()
        .table(InternalCredentials::Table)
        .col(text(InternalCredentials::Hash).primary_key())
        .col(text(InternalCredentials::InstanceId))
        .col(big_integer(InternalCredentials::CreatedAt))
        .col(big_integer(InternalCredentials::HeartbeatAt))
        .to_owned()
}

fn audit_log() -> TableCreateStatement {
    Table::create()
        .table(AuditLog::Table)
        .col(big_pk_auto(AuditLog::Id))
        .col(big_integer(AuditLog::At))
        .col(text(AuditLog::Actor))
        .col(text(AuditLog::Action))
        .col(text(AuditLog::Resource))
        .col(text(AuditLog::Outcome))
        .col(text(AuditLog::CredentialId))
        .col(text(AuditLog::Peer))
        .to_owned()
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    DisplayName,
    Kind,
    CreatedAt,
}

#[derive(DeriveIden)]
enum GroupMembers {
    Table,
    UserId,
    GroupName,
    AddedAt,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    Hash,
    UserId,
    Provider,
    Purpose,
    MintedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum InternalCredentials {
    Table,
    Hash,
    InstanceId,
    CreatedAt,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Resource,
    Outcome,
    CredentialId,
    Peer,
}
