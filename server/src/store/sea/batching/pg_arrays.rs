//! The group commit's statements on PostgreSQL, one SQL text for any number
//! of rows.
//!
//! sea-query writes a multi-row statement with a placeholder per value, so
//! every batch size is a statement of its own. sqlx keeps 100 prepared
//! statements per connection and batches come in up to 512 sizes per table,
//! so most batches paid a Parse round trip and a fresh plan per statement.
//! With one array per column (`UNNEST`, `= ANY`) the text never changes and
//! each connection prepares each statement once.

use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement, Value};

use crate::store::sea::DbResult;
use crate::store::sea::entities::{spent_ticket, ticket};
use crate::store::{AuditRecord, SpentTicket, TicketRecord};

const INSERT_TICKETS: &str = "INSERT INTO tickets \
    (hash, user_id, provider, purpose, minted_at, expires_at) \
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[])";

const INSERT_SPENT: &str = "INSERT INTO spent_tickets \
    (hash, spent_at, spent_by, peer, expires_at) \
    SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[])";

const TAKE_TICKETS: &str = "DELETE FROM tickets WHERE hash = ANY($1::text[]) \
    RETURNING hash, user_id, provider, purpose, minted_at, expires_at";

const FIND_SPENT: &str = "SELECT hash, spent_at, spent_by, peer, expires_at FROM spent_tickets \
    WHERE hash = ANY($1::text[])";

// WITH ORDINALITY: entries get their ids in the order they were given.
const APPEND_AUDITS: &str = "INSERT INTO audit_log \
    (at, actor, action, resource, outcome, credential_id, peer) \
    SELECT at, actor, action, resource, outcome, credential_id, peer FROM UNNEST(\
    $1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
    WITH ORDINALITY AS entry(at, actor, action, resource, outcome, credential_id, peer, n) \
    ORDER BY n";

/// One column of `rows` as an array parameter.
fn column<R, T: Into<Value> + Clone>(rows: &[&R], field: impl Fn(&R) -> &T) -> Value
where
    Vec<T>: Into<Value>,
{
    rows.iter()
        .map(|row| field(row).clone())
        .collect::<Vec<T>>()
        .into()
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

pub(in crate::store::sea) async fn insert_tickets(
    db: &impl ConnectionTrait,
    rows: &[&TicketRecord],
) -> DbResult<()> {
    let values = vec![
        column(rows, |t| &t.hash),
        column(rows, |t| &t.user_id),
        column(rows, |t| &t.provider),
        column(rows, |t| &t.purpose),
        column(rows, |t| &t.minted_at),
        column(rows, |t| &t.expires_at),
    ];
    db.execute_raw(statement(INSERT_TICKETS, values)).await?;
    Ok(())
}

pub(in crate::store::sea) async fn take_tickets(
    db: &impl ConnectionTrait,
    hashes: &[&str],
) -> DbResult<Vec<ticket::Model>> {
    rows_of::<ticket::Entity>(db, TAKE_TICKETS, hashes).await
}

/// The tombstones found, one per hash that has one.
pub(in crate::store::sea) async fn find_spent(
    db: &impl ConnectionTrait,
    hashes: &[&str],
) -> DbResult<Vec<spent_ticket::Model>> {
    rows_of::<spent_ticket::Entity>(db, FIND_SPENT, hashes).await
}

/// The rows of `E` that `sql`, given `hashes` as its one array, returns.
async fn rows_of<E: EntityTrait>(
    db: &impl ConnectionTrait,
    sql: &str,
    hashes: &[&str],
) -> DbResult<Vec<E::Model>> {
    let hashes: Vec<String> = hashes.iter().map(|&hash| hash.to_owned()).collect();
    let statement = statement(sql, vec![hashes.into()]);
    E::find().from_raw_sql(statement).all(db).await
}

pub(in crate::store::sea) async fn insert_spent(
    db: &impl ConnectionTrait,
    rows: &[SpentTicket],
) -> DbResult<()> {
    let rows: Vec<&SpentTicket> = rows.iter().collect();
    let values = vec![
        column(&rows, |t| &t.hash),
        column(&rows, |t| &t.spent_at),
        column(&rows, |t| &t.spent_by),
        column(&rows, |t| &t.peer),
        column(&rows, |t| &t.expires_at),
    ];
    db.execute_raw(statement(INSERT_SPENT, values)).await?;
    Ok(())
}

pub(in crate::store::sea) async fn append_audits(
    db: &impl ConnectionTrait,
    rows: &[&AuditRecord],
) -> DbResult<()> {
    let values = vec![
        column(rows, |a| &a.at),
        column(rows, |a| &a.actor),
        column(rows, |a| &a.action),
        column(rows, |a| &a.resource),
        column(rows, |a| &a.outcome),
        column(rows, |a| &a.credential_id),
        column(rows, |a| &a.peer),
    ];
    db.execute_raw(statement(APPEND_AUDITS, values)).await?;
    Ok(())
}
