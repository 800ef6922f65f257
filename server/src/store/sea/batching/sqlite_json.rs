//! The group commit's statements on SQLite, one SQL text for any number of
//! rows.
//!
//! sea-query writes a multi-row statement with a placeholder per value, so
//! every batch size is a statement of its own, which SQLite parses and
//! plans afresh: the few prepared statements sqlx keeps per connection
//! cannot hold them all. A statement per row keeps one text but costs two
//! thread hand-offs to sqlx's SQLite worker per row, more than the planning
//! it saves. So, as PostgreSQL gets arrays (`pg_arrays.rs`), SQLite gets
//! the rows as one parameter, a JSON array: one text per statement, which
//! the writer's connection prepares once. Rows are unpacked by
//! `jsonb_each`, whose `value` of a row is SQLite's binary JSON
//! (`json_each` would hand each row back as text, which every `->>` parses
//! again); a list of hashes by `json_each`. Every string comes back as
//! given, U+0000 included (see the tests).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, Statement};
use serde::Serialize;

use crate::store::sea::DbResult;
use crate::store::sea::entities::{spent_ticket, ticket};
use crate::store::{AuditRecord, SpentTicket, TicketRecord};

const INSERT_TICKETS: &str = "INSERT INTO tickets \
    (hash, user_id, provider, purpose, minted_at, expires_at) \
    SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM jsonb_each($1)";

// DELETE … RETURNING: each row goes to exactly one statement, with no
// read-then-write window; a hash given twice is deleted and returned once.
const TAKE_TICKETS: &str = "DELETE FROM tickets WHERE hash IN (SELECT value FROM json_each($1)) \
    RETURNING hash, user_id, provider, purpose, minted_at, expires_at";

const INSERT_SPENT: &str = "INSERT INTO spent_tickets \
    (hash, spent_at, spent_by, peer, expires_at) \
    SELECT value->>0, value->>1, value->>2, value->>3, value->>4 FROM jsonb_each($1)";

const FIND_SPENT: &str = "SELECT hash, spent_at, spent_by, peer, expires_at FROM spent_tickets \
    WHERE hash IN (SELECT value FROM json_each($1))";

// ORDER BY key: entries get their ids in the order they were given.
const APPEND_AUDITS: &str = "INSERT INTO audit_log \
    (at, actor, action, resource, outcome, credential_id, peer) \
    SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6 \
    FROM jsonb_each($1) ORDER BY key";

/// `sql` with `rows` as its one parameter: a JSON array of what `row`
/// makes of each (a tuple is written as an array), written straight to
/// text.
fn statement<'a, R, J: Serialize>(
    sql: &str,
    rows: &'a [R],
    row: impl Fn(&'a R) -> J,
) -> DbResult<Statement> {
    let rows: Vec<J> = rows.iter().map(row).collect();
    let text = serde_json::to_string(&rows).map_err(|err| DbErr::Json(err.to_string()))?;
    Ok(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        sql,
        [text.into()],
    ))
}

pub(in crate::store::sea) async fn insert_tickets(
    db: &impl ConnectionTrait,
    rows: &[&TicketRecord],
) -> DbResult<()> {
    let insert = statement(INSERT_TICKETS, rows, |t| {
        (
            &t.hash,
            &t.user_id,
            &t.provider,
            &t.purpose,
            t.minted_at,
            t.expires_at,
        )
    })?;
    db.execute_raw(insert).await?;
    Ok(())
}

/// The rows deleted, one per hash that had one.
pub(in crate::store::sea) async fn take_tickets(
    db: &impl ConnectionTrait,
    hashes: &[&str],
) -> DbResult<Vec<ticket::Model>> {
    rows_of::<ticket::Entity>(db, TAKE_TICKETS, hashes).await
}

pub(in crate::store::sea) async fn insert_spent(
    db: &impl ConnectionTrait,
    rows: &[SpentTicket],
) -> DbResult<()> {
    let insert = statement(INSERT_SPENT, rows, |t| {
        (&t.hash, t.spent_at, &t.spent_by, &t.peer, t.expires_at)
    })?;
    db.execute_raw(insert).await?;
    Ok(())
}

/// The tombstones found, one per hash that has one.
pub(in crate::store::sea) async fn find_spent(
    db: &impl ConnectionTrait,
    hashes: &[&str],
) -> DbResult<Vec<spent_ticket::Model>> {
    rows_of::<spent_ticket::Entity>(db, FIND_SPENT, hashes).await
}

/// The rows of `E` that `sql`, given `hashes`, returns.
async fn rows_of<E: EntityTrait>(
    db: &impl ConnectionTrait,
    sql: &str,
    hashes: &[&str],
) -> DbResult<Vec<E::Model>> {
    let statement = statement(sql, hashes, |hash| *hash)?;
    E::find().from_raw_sql(statement).all(db).await
}

pub(in crate::store::sea) async fn append_audits(
    db: &impl ConnectionTrait,
    rows: &[&AuditRecord],
) -> DbResult<()> {
    let insert = statement(APPEND_AUDITS, rows, |a| {
        (
            a.at,
            &a.actor,
            &a.action,
            &a.resource,
            &a.outcome,
            &a.credential_id,
            &a.peer,
        )
    })?;
    db.execute_raw(insert).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
