//! Group commit for the writes every ticket and audit entry makes.
//!
//! Concurrent calls hand their write to a writer task, which takes every
//! write waiting and applies them together: one transaction, one statement
//! per table. Each call still waits until its own write is committed, so
//! nothing is acknowledged before it is stored, and a ticket still goes to
//! exactly one consumer (`DELETE … RETURNING` hands each row out once, and
//! a hash asked for twice in one batch goes to the first asker only).
//!
//! Why: the cost of a statement is mostly fixed (a round trip to
//! PostgreSQL, two thread hand-offs to sqlx's SQLite worker, a commit), so
//! under load one statement for many calls is far cheaper than one each.
//! With a single call waiting, it runs alone with no transaction around it.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::records;
use crate::store::{AuditRecord, Result, StoreError, TakeAudit, TicketRecord};

/// Most writes in one batch. Bounds a statement's bind parameters (7 per
/// audit entry) well below PostgreSQL's 65,535 and SQLite's 32,766.
const MAX_BATCH: usize = 512;
/// Writes that may wait for a writer; beyond this, callers wait to enqueue.
const QUEUE_DEPTH: usize = 8192;

/// A write the batcher applies.
pub enum Write {
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

struct Job {
    write: Write,
    reply: oneshot::Sender<Answer>,
}

/// The callers' side: hands writes to the writer tasks.
#[derive(Debug)]
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts `writers` writer tasks on `db`. They stop once the batcher is
    /// dropped and the writes already queued are done.
    pub fn start(db: &DatabaseConnection, writers: usize) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..writers.max(1) {
            tokio::spawn(supervise_writer(db.clone(), queue.clone()));
        }
        Self { jobs }
    }

    /// Applies `write` with whatever else is waiting; returns once it is
    /// committed.
    pub async fn write(&self, write: Write) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { write, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable(Arc::new(DbErr::Custom(
        "the database writer has stopped".to_owned(),
    )))
}

/// Restarts a writer that panicked: with one writer (SQLite), a dead one
/// would fail every later write until the process restarts. The calls of
/// the batch it was writing fail as unavailable.
async fn supervise_writer(db: DatabaseConnection, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        match tokio::spawn(run_writer(db.clone(), queue.clone())).await {
            Err(err) if err.is_panic() => {
                tracing::error!("the database writer panicked; restarting it");
            }
            // The batcher is gone (or the runtime is shutting down).
            _ => return,
        }
    }
}

async fn run_writer(db: DatabaseConnection, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    loop {
        // One writer at a time collects a batch; the others are writing.
        if queue.lock().await.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return;
        }
        metrics::histogram!(crate::metrics::WRITE_BATCH_SIZE).record(jobs.len() as f64);
        let (writes, replies): (Vec<Write>, Vec<_>) =
            jobs.drain(..).map(|job| (job.write, job.reply)).unzip();
        let answers = write_batch(&db, &writes).await;
        for (reply, answer) in replies.into_iter().zip(answers) {
            // The caller may have given up (deadline, cancellation).
            let _ = reply.send(answer);
        }
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
