//! The retrievable secrets of workspace rows: sealed on their way in,
//! opened on their way out (`sealing/`), counted by key, and rewrapped
//! under the current key by `tessera rewrap`.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, Statement, Value};
use tessera_client::Secret;

use super::{DbResult, SeaStore};
use crate::store::sealing::{self, Keyring, SealError, SealedCensus};
use crate::store::{Result, StoreError, WorkspaceRecord};

/// The columns of `workspaces` that hold sealed values: each is counted,
/// checked at startup and rewrapped. Values may move between them within
/// a row, as the associated data is the row, not the column.
const SEALED_COLUMNS: &[&str] = &[
    "inbound_secret",
    "next_inbound_secret",
    "previous_inbound_secret",
];

/// Rows `tessera rewrap` reads at once: short statements beside a server
/// that may be writing.
const REWRAP_BATCH: u64 = 100;

/// Passes `tessera rewrap` makes at most over values a server moved or
/// rewrote behind it.
const REWRAP_PASSES: usize = 5;

/// `secret` of workspace `id` as stored: sealed under the current key.
pub(super) fn seal_secret(keys: &Keyring, id: &str, secret: &Secret) -> Result<Secret> {
    let sealed = keys
        .seal(id, secret)
        .map_err(|err| sealing_error(id, &err))?;
    Ok(Secret::new(sealed))
}

/// `record` as stored: its retrievable secrets sealed under the current
/// key. (A new workspace has no rotation under way.)
pub(super) fn seal_workspace(keys: &Keyring, record: &WorkspaceRecord) -> Result<WorkspaceRecord> {
    let sealed = record.inbound_secret.as_ref();
    let sealed = sealed.map(|secret| seal_secret(keys, &record.id, secret));
    Ok(WorkspaceRecord {
        inbound_secret: sealed.transpose()?,
        ..record.clone()
    })
}

/// `record` as read: its retrievable secrets opened.
pub(super) fn open_workspace(keys: &Keyring, record: WorkspaceRecord) -> Result<WorkspaceRecord> {
    let id = record.id.clone();
    let open = |stored: Secret| {
        keys.open(&id, stored.expose())
            .map_err(|err| sealing_error(&id, &err))
    };
    let mut rotation = record.rotation;
    if let Some(next) = &mut rotation.next {
        next.secret = open(std::mem::take(&mut next.secret))?;
    }
    if let Some((previous, _)) = &mut rotation.previous {
        *previous = open(std::mem::take(previous))?;
    }
    Ok(WorkspaceRecord {
        inbound_secret: record.inbound_secret.map(open).transpose()?,
        rotation,
        ..record
    })
}

/// The error of a value of workspace `id` that could not be sealed or opened.
fn sealing_error(id: &str, err: &SealError) -> StoreError {
    StoreError::Sealing(format!("the secret of workspace {id}: {err}"))
}

/// What `tessera rewrap` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrapped {
    /// The values before, by how they were stored.
    pub before: SealedCensus,
    /// The values rewrapped, by how they were stored before.
    pub moved: SealedCensus,
    /// Values changed by someone else between their read and their rewrap
    /// (a server wrote or moved them meanwhile); a later pass looks again.
    pub skipped: u64,
    /// The values after.
    pub after: SealedCensus,
}

impl SeaStore {
    /// The same store, sealing retrievable secrets under `keys` (none:
    /// plaintext, as before encryption).
    pub fn with_keys(mut self, keys: Arc<Keyring>) -> Self {
        self.keys = keys;
        self
    }

    /// The id of the key that seals, if any.
    pub fn current_key_id(&self) -> Option<String> {
        self.keys.current_id().map(str::to_owned)
    }

    /// The stored retrievable values, by key; an error naming the key ids
    /// when the configured keys cannot open them all (the process must not
    /// start).
    pub async fn check_keys(&self) -> Result<SealedCensus> {
        let census = self.sealed_census().await?;
        census
            .require(&self.keys)
            .map_err(|missing| StoreError::Sealing(missing.to_string()))?;
        Ok(census)
    }

    /// The stored retrievable values, by key.
    pub async fn sealed_census(&self) -> Result<SealedCensus> {
        let mut census = SealedCensus::default();
        for column in SEALED_COLUMNS {
            let counted = self.gated(count_column(&self.db, column)).await?;
            census.merge(&counted);
        }
        Ok(census)
    }

    /// Seals every value not under the current key (plaintext included)
    /// under it, `REWRAP_BATCH` rows at a time, each with a compare-and-set
    /// on the value read, so a concurrent write is never overwritten. A
    /// rotation may move a value between columns behind a pass (a promotion
    /// copies the next secret into the current one), so passes repeat until
    /// one finds nothing left, at most `REWRAP_PASSES` times; the report's
    /// `after` says what, if anything, is still stale.
    pub async fn rewrap(&self) -> Result<Rewrapped> {
        let Some(current) = self.keys.current_id() else {
            return Err(StoreError::Sealing(
                "no encryption key is configured".into(),
            ));
        };
        let before = self.check_keys().await?;
        let header = sealing::header(current);
        let mut rewrapped = Rewrapped {
            after: before.clone(),
            before,
            ..Rewrapped::default()
        };
        for _ in 0..REWRAP_PASSES {
            if !rewrapped.after.stale(current) {
                break;
            }
            for column in SEALED_COLUMNS {
                self.rewrap_column(column, &header, &mut rewrapped).await?;
            }
            rewrapped.after = self.sealed_census().await?;
        }
        Ok(rewrapped)
    }

    /// One pass of [`rewrap`](Self::rewrap) over `column`.
    async fn rewrap_column(
        &self,
        column: &str,
        current: &str,
        rewrapped: &mut Rewrapped,
    ) -> Result<()> {
        let mut after = String::new();
        loop {
            let batch = self
                .gated(stale_batch(&self.db, column, current, &after))
                .await?;
            for (id, stored) in &batch {
                let secret = self
                    .keys
                    .open(id, stored)
                    .map_err(|err| sealing_error(id, &err))?;
                let sealed = self
                    .keys
                    .seal(id, &secret)
                    .map_err(|err| sealing_error(id, &err))?;
                let replace = replace_value(&self.db, column, id, stored, &sealed);
                if self.gated(replace).await? {
                    rewrapped.moved.add(Some(stored), 1);
                } else {
                    rewrapped.skipped += 1;
                }
            }
            match batch.last() {
                Some((id, _)) if batch.len() as u64 == REWRAP_BATCH => after.clone_from(id),
                _ => return Ok(()),
            }
            tokio::task::yield_now().await;
        }
    }
}

/// The values of `column` by key: plaintext, or by their header.
async fn count_column(db: &impl ConnectionTrait, column: &str) -> DbResult<SealedCensus> {
    let sql = format!(
        "SELECT CASE WHEN substr({column}, 1, 4) = 'enc:' \
         THEN substr({column}, 1, {len}) ELSE NULL END AS header, COUNT(*) AS n \
         FROM workspaces WHERE {column} IS NOT NULL GROUP BY 1",
        len = sealing::HEADER_LEN
    );
    let statement = Statement::from_string(db.get_database_backend(), sql);
    let mut census = SealedCensus::default();
    for row in db.query_all_raw(statement).await? {
        let header: Option<String> = row.try_get("", "header")?;
        let count: i64 = row.try_get("", "n")?;
        census.add(header.as_deref(), u64::try_from(count).unwrap_or(0));
    }
    Ok(census)
}

/// Up to `REWRAP_BATCH` rows after id `after` whose `column` is set and
/// not under `current` (a header), by id: `(id, stored value)`.
async fn stale_batch(
    db: &impl ConnectionTrait,
    column: &str,
    current: &str,
    after: &str,
) -> DbResult<Vec<(String, String)>> {
    let sql = format!(
        "SELECT id, {column} AS value FROM workspaces \
         WHERE {column} IS NOT NULL AND id > $1 AND substr({column}, 1, {len}) <> $2 \
         ORDER BY id LIMIT $3",
        len = sealing::HEADER_LEN
    );
    let limit = i64::try_from(REWRAP_BATCH).unwrap_or(i64::MAX);
    let values: [Value; 3] = [after.into(), current.into(), limit.into()];
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
    db.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "value")?)))
        .collect()
}

/// Sets `column` of workspace `id` to `new` if it still holds `old`; false
/// when someone changed it meanwhile.
async fn replace_value(
    db: &impl ConnectionTrait,
    column: &str,
    id: &str,
    old: &str,
    new: &str,
) -> DbResult<bool> {
    let sql = format!("UPDATE workspaces SET {column} = $1 WHERE id = $2 AND {column} = $3");
    let values: [Value; 3] = [new.into(), id.into(), old.into()];
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
    Ok(db.execute_raw(statement).await?.rows_affected() == 1)
}
