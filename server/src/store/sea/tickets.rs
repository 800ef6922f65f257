//! Tickets: written and taken by the group commit (`batching/writes.rs`),
//! reaped by the background reaper.

use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait};

use super::DbResult;
use super::batching::{pg_arrays, sqlite_json};
use super::entities::ticket;
use crate::store::{SpentTicket, TicketRecord};

/// Stores new tickets in one statement (see `pg_arrays.rs` and
/// `sqlite_json.rs`).
pub(super) async fn insert_tickets(
    db: &impl ConnectionTrait,
    records: &[&TicketRecord],
) -> DbResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        return pg_arrays::insert_tickets(db, records).await;
    }
    sqlite_json::insert_tickets(db, records).await
}

/// Deletes the tickets with these hashes and returns the rows that existed.
pub(super) async fn take_tickets(
    db: &impl ConnectionTrait,
    hashes: &[&str],
) -> DbResult<Vec<TicketRecord>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    // DELETE … RETURNING: each row goes to exactly one statement, on SQLite
    // and PostgreSQL alike, with no read-then-write window.
    let rows = if db.get_database_backend() == DbBackend::Postgres {
        pg_arrays::take_tickets(db, hashes).await?
    } else {
        sqlite_json::take_tickets(db, hashes).await?
    };
    Ok(rows
        .into_iter()
        .map(|row| TicketRecord {
            hash: row.hash,
            user_id: row.user_id,
            provider: row.provider,
            purpose: row.purpose,
            minted_at: row.minted_at,
            expires_at: row.expires_at,
        })
        .collect())
}

/// Deletes at most `limit` tickets, and at most `limit` tombstones, that
/// expired before `now`, the oldest first: short statements, so the reaper
/// never holds the write lock long (SQLite has one) however many expired.
pub(super) async fn delete_expired_tickets(
    db: &impl ConnectionTrait,
    now: i64,
    limit: u64,
) -> DbResult<u64> {
    // `$1` is a placeholder on SQLite and PostgreSQL alike.
    let tickets = "DELETE FROM tickets WHERE hash IN \
                   (SELECT hash FROM tickets WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)";
    let spent = "DELETE FROM spent_tickets WHERE hash IN (SELECT hash FROM spent_tickets \
                 WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)";
    let reaped = super::delete_chunk(db, tickets, now, limit).await?;
    let tombstones = super::delete_chunk(db, spent, now, limit).await?;
    Ok(reaped.max(tombstones))
}

/// Stores the tombstones of tickets just spent (see [`insert_tickets`]).
pub(super) async fn insert_spent(
    db: &impl ConnectionTrait,
    records: &[SpentTicket],
) -> DbResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        return pg_arrays::insert_spent(db, records).await;
    }
    sqlite_json::insert_spent(db, records).await
}

/// The tombstones of these hashes (asked for only when a take found no live
/// ticket: a replay, garbage, or a reaped ticket).
pub(super) async fn find_spent(
    db: &impl ConnectionTrait,
    hashes: &[&str],
) -> DbResult<Vec<SpentTicket>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let rows = if db.get_database_backend() == DbBackend::Postgres {
        pg_arrays::find_spent(db, hashes).await?
    } else {
        sqlite_json::find_spent(db, hashes).await?
    };
    Ok(rows
        .into_iter()
        .map(|row| SpentTicket {
            hash: row.hash,
            spent_at: row.spent_at,
            spent_by: row.spent_by,
            peer: row.peer,
            expires_at: row.expires_at,
        })
        .collect())
}

/// Number of stored tickets, expired or not (for tests).
pub(super) async fn count_tickets(db: &impl ConnectionTrait) -> DbResult<u64> {
    ticket::Entity::find().count(db).await
}
