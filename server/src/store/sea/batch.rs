//! Group commit for the writes every ticket and audit entry makes.
//!
//! Concurrent calls hand their write to a writer task (see `queue.rs`),
//! which takes every write waiting and applies them together: one
//! transaction, one statement per table. Each call still waits until its
//! own write is committed, so nothing is acknowledged before it is stored,
//! and a ticket still goes to exactly one consumer (`DELETE … RETURNING`
//! hands each row out once, and a hash asked for twice in one batch goes to
//! the first asker only). A lone write runs with no transaction around it.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

use super::queue::{self, Queue};
use super::records;
use crate::store::{AuditRecord, Result, StoreError, TakeAudit, TicketRecord};

/// Most writes in one batch. Bounds a statement's bind parameters (7 per
/// audit entry) well below PostgreSQL's 65,535 and SQLite's 32,766.
const MAX_BATCH: usize = 512;
/// The writer tasks, as logs and errors name them.
const WRITER: &str = "the database writer";

/// A write the batcher applies.
pub(super) enum Write {
    /// Store this new ticket and, in the same transaction, its audit entry.
    Ticket(TicketRecord, Option<AuditRecord>),
    /// Delete the ticket with this hash and return it; append the audit
    /// entry made from what was found, in the same transaction.
    Take(String, Option<TakeAudit>),
    /// Append this audit entry.
    Audit(AuditRecord),
}

/// What one write gave back: the ticket for a [`Write::Take`] that found
/// one, `None` otherwise.
type Answer = Result<Option<TicketRecord>>;

/// The callers' side: hands writes to the writer tasks.
#[derive(Debug)]
pub(super) struct Batcher {
    queue: Queue<Write, Answer>,
}

impl Batcher {
    /// Starts `writers` writer tasks on `db`. They stop once the batcher is
    /// dropped and the writes already queued are done.
    pub(super) fn start(db: &DatabaseConnection, writers: usize) -> Self {
        let db = db.clone();
        let queue = Queue::start(WRITER, writers, MAX_BATCH, move |writes| {
            let db = db.clone();
            async move {
                let size = writes.len() as f64;
                metrics::histogram!(crate::metrics::WRITE_BATCH_SIZE).record(size);
                write_batch(&db, &writes).await
            }
        });
        Self { queue }
    }

    /// Applies `write` with whatever else is waiting; returns once it is
    /// committed.
    pub(super) async fn write(&self, write: Write) -> Answer {
        let answer = self.queue.call(write).await;
        answer.unwrap_or_else(|| Err(queue::stopped(WRITER)))
    }
}

/// One answer per write, in order.
async fn write_batch(db: &DatabaseConnection, writes: &[Write]) -> Vec<Answer> {
    match apply(db, writes).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        // One bad write (or, on PostgreSQL, a deadlock with the reaper)
        // must not fail the calls batched with it. The transaction rolled
        // back, so each write is applied again on its own.
        Err(StoreError::Db(_)) if writes.len() > 1 => {
            let mut answers = Vec::with_capacity(writes.len());
            for write in writes {
                let alone = apply(db, std::slice::from_ref(write)).await;
                answers.push(alone.map(|mut found| found.pop().flatten()));
            }
            answers
        }
        Err(err) => writes.iter().map(|_| Err(err.clone())).collect(),
    }
}

/// The rows of a batch, by table.
#[derive(Default)]
struct Rows<'a> {
    tickets: Vec<&'a TicketRecord>,
    hashes: Vec<&'a str>,
    audits: Vec<&'a AuditRecord>,
    /// Takes whose audit entry is made once the ticket is found.
    audited_takes: usize,
}

impl<'a> Rows<'a> {
    fn of(writes: &'a [Write]) -> Self {
        let mut rows = Self::default();
        for write in writes {
            match write {
                Write::Ticket(ticket, entry) => {
                    rows.tickets.push(ticket);
                    rows.audits.extend(entry);
                }
                Write::Take(hash, audit) => {
                    rows.hashes.push(hash);
                    rows.audited_takes += usize::from(audit.is_some());
                }
                Write::Audit(entry) => rows.audits.push(entry),
            }
        }
        rows
    }

    /// How many statements writing them takes.
    fn statements(&self) -> usize {
        [
            self.tickets.is_empty(),
            self.hashes.is_empty(),
            self.audits.is_empty() && self.audited_takes == 0,
        ]
        .iter()
        .filter(|empty| !**empty)
        .count()
    }
}

async fn apply(db: &DatabaseConnection, writes: &[Write]) -> Result<Vec<Option<TicketRecord>>> {
    let rows = Rows::of(writes);
    if rows.statements() == 1 {
        return apply_on(db, writes, rows).await;
    }
    let txn = db.begin().await?;
    let answers = apply_on(&txn, writes, rows).await?;
    txn.commit().await?;
    Ok(answers)
}

async fn apply_on(
    db: &impl ConnectionTrait,
    writes: &[Write],
    rows: Rows<'_>,
) -> Result<Vec<Option<TicketRecord>>> {
    records::insert_tickets(db, &rows.tickets).await?;
    let mut taken: HashMap<String, TicketRecord> = records::take_tickets(db, &rows.hashes)
        .await?
        .into_iter()
        .map(|ticket| (ticket.hash.clone(), ticket))
        .collect();
    // `remove`: a hash asked for twice in one batch goes to the first asker.
    let answers: Vec<Option<TicketRecord>> = writes
        .iter()
        .map(|write| match write {
            Write::Take(hash, _) => taken.remove(hash),
            _ => None,
        })
        .collect();
    let take_audits: Vec<AuditRecord> = writes
        .iter()
        .zip(&answers)
        .filter_map(|(write, found)| match write {
            Write::Take(_, Some(audit)) => Some(audit(found.as_ref())),
            _ => None,
        })
        .collect();
    let mut audits = rows.audits;
    audits.extend(&take_audits);
    records::append_audits(db, &audits).await?;
    Ok(answers)
}
