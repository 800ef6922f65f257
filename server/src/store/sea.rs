//! [`Store`] on sea-orm: SQLite (default) or PostgreSQL, chosen by URL.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, Database, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tessera_migrations::{Migrator, MigratorTrait};

use super::entities::{audit, group_member, internal_credential, ticket, user};
use super::{
    AuditRecord, InternalCredentialRecord, Result, Store, StoreError, TicketRecord, UserKind,
    UserRecord,
};

/// How long a caller waits for a pooled connection before the database
/// counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long SQLite waits for another writer (another process, or the CLI).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Migration attempts before giving up: replicas starting together race to
/// migrate, and the loser retries and finds the work done.
const MIGRATION_ATTEMPTS: u32 = 5;

/// The sea-orm implementation of [`Store`].
#[derive(Clone, Debug)]
pub struct SeaStore {
    db: DatabaseConnection,
}

impl SeaStore {
    /// Connects to `url` (`sqlite:…` creates the file if missing; anything
    /// else is PostgreSQL).
    pub async fn connect(url: &str) -> Result<Self> {
        let mut options = ConnectOptions::new(url);
        options
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_timeout(ACQUIRE_TIMEOUT)
            .sqlx_logging(false);
        if url.starts_with("sqlite:") {
            options.max_connections(8).map_sqlx_sqlite_opts(|opts| {
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
            });
        } else {
            options.max_connections(32);
        }
        let db = Database::connect(options).await?;
        Ok(Self { db })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        let mut attempt = 1;
        loop {
            match Migrator::up(&self.db, None).await {
                Ok(()) => return Ok(()),
                Err(err) if attempt < MIGRATION_ATTEMPTS => {
                    tracing::warn!(attempt, error = %err, "migration failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Closes the connection pool.
    pub async fn close(self) {
        if let Err(err) = self.db.close().await {
            tracing::warn!(error = %err, "closing the database pool failed");
        }
    }

    async fn groups_of(&self, user_id: &str) -> Result<Vec<String>> {
        let rows = group_member::Entity::find()
            .filter(group_member::Column::UserId.eq(user_id))
            .order_by_asc(group_member::Column::GroupName)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|row| row.group_name).collect())
    }
}

#[async_trait]
impl Store for SeaStore {
    async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    async fn ensure_user(
        &self,
        email: &str,
        display_name: &str,
        kind: UserKind,
        groups: &[&str],
    ) -> Result<UserRecord> {
        let now = crate::clock::now_ms();
        user::Entity::insert(user::ActiveModel {
            id: Set(random_id()),
            email: Set(email.to_owned()),
            display_name: Set(display_name.to_owned()),
            kind: Set(kind.as_str().to_owned()),
            created_at: Set(now),
        })
        .on_conflict_do_nothing_on([user::Column::Email])
        .exec(&self.db)
        .await?;
        let row = user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::Db(sea_orm::DbErr::RecordNotFound(email.to_owned())))?;
        for group in groups {
            group_member::Entity::insert(group_member::ActiveModel {
                user_id: Set(row.id.clone()),
                group_name: Set((*group).to_owned()),
                added_at: Set(now),
            })
            .on_conflict_do_nothing()
            .exec(&self.db)
            .await?;
        }
        let groups = self.groups_of(&row.id).await?;
        Ok(UserRecord {
            kind: if row.kind == UserKind::Service.as_str() {
                UserKind::Service
            } else {
                UserKind::Human
            },
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            groups,
        })
    }

    async fn insert_ticket(&self, record: &TicketRecord) -> Result<()> {
        ticket::Entity::insert(ticket::ActiveModel {
            hash: Set(record.hash.clone()),
            user_id: Set(record.user_id.clone()),
            provider: Set(record.provider.clone()),
            purpose: Set(record.purpose.clone()),
            minted_at: Set(record.minted_at),
            expires_at: Set(record.expires_at),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    async fn take_ticket(&self, hash: &str) -> Result<Option<TicketRecord>> {
        // DELETE … RETURNING: the row goes to exactly one caller, on SQLite
        // and PostgreSQL alike, with no read-then-write window.
        let mut rows = ticket::Entity::delete_many()
            .filter(ticket::Column::Hash.eq(hash))
            .exec_with_returning(&self.db)
            .await?;
        Ok(rows.pop().map(|row| TicketRecord {
            hash: row.hash,
            user_id: row.user_id,
            provider: row.provider,
            purpose: row.purpose,
            minted_at: row.minted_at,
            expires_at: row.expires_at,
        }))
    }

    async fn delete_expired_tickets(&self, now: i64) -> Result<u64> {
        let result = ticket::Entity::delete_many()
            .filter(ticket::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    async fn count_tickets(&self) -> Result<u64> {
        Ok(ticket::Entity::find().count(&self.db).await?)
    }

    async fn upsert_internal_credential(&self, record: &InternalCredentialRecord) -> Result<()> {
        internal_credential::Entity::insert(internal_credential::ActiveModel {
            hash: Set(record.hash.clone()),
            instance_id: Set(record.instance_id.clone()),
            created_at: Set(record.created_at),
            heartbeat_at: Set(record.heartbeat_at),
        })
        .on_conflict(
            OnConflict::column(internal_credential::Column::Hash)
                .update_column(internal_credential::Column::HeartbeatAt)
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    async fn find_internal_credential(
        &self,
        hash: &str,
    ) -> Result<Option<InternalCredentialRecord>> {
        let row = internal_credential::Entity::find_by_id(hash.to_owned())
            .one(&self.db)
            .await?;
        Ok(row.map(|row| InternalCredentialRecord {
            hash: row.hash,
            instance_id: row.instance_id,
            created_at: row.created_at,
            heartbeat_at: row.heartbeat_at,
        }))
    }

    async fn delete_internal_credential(&self, hash: &str) -> Result<()> {
        internal_credential::Entity::delete_by_id(hash.to_owned())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn delete_stale_internal_credentials(&self, cutoff: i64) -> Result<u64> {
        let result = internal_credential::Entity::delete_many()
            .filter(internal_credential::Column::HeartbeatAt.lt(cutoff))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        audit::Entity::insert(audit::ActiveModel {
            at: Set(record.at),
            actor: Set(record.actor.clone()),
            action: Set(record.action.clone()),
            resource: Set(record.resource.clone()),
            outcome: Set(record.outcome.clone()),
            credential_id: Set(record.credential_id.clone()),
            peer: Set(record.peer.clone()),
            ..Default::default()
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    async fn recent_audit(&self, limit: u64) -> Result<Vec<AuditRecord>> {
        let rows = audit::Entity::find()
            .order_by_desc(audit::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| AuditRecord {
                at: row.at,
                actor: row.actor,
                action: row.action,
                resource: row.resource,
                outcome: row.outcome,
                credential_id: row.credential_id,
                peer: row.peer,
            })
            .collect())
    }
}

/// A random 128-bit id in hex, for user rows.
fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
