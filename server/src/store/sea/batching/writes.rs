//! Group commit for the writes every ticket and audit entry makes.
//!
//! Concurrent calls hand their write to a writer task (see `queue.rs`),
//! which takes every write waiting and applies them together: one
//! transaction, one statement per table. Each call still waits until its
//! own write is committed, so nothing is acknowledged before it is stored,
//! and a ticket still goes to exactly one consumer (`DELETE … RETURNING`
//! hands each row out once, and a hash asked for twice in one batch goes to
//! the first asker only). A take is judged once, inside the transaction, so
//! its audit entry and its caller's answer come from the same verdict. A
//! lone write runs with no transaction around it. A batch the database
//! refuses is split in halves until the writes it refuses stand alone
//! (`isolate.rs`): they fail, the others are committed.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

use super::isolate::isolate;
use super::queue::{self, Queue};
use crate::store::sea::gate::Gate;
use crate::store::sea::{DbResult, audit, tickets};
use crate::store::{
    AuditRecord, AuditTap, Found, Result, SpentTicket, TicketRecord, TicketRejection, TicketTake,
    Verdict,
};

/// Most writes in one batch. Bounds a statement's bind parameters (7 per
/// audit entry) well below PostgreSQL's 65,535 and SQLite's 32,766.
const MAX_BATCH: usize = 512;
/// The writer tasks, as logs and errors name them.
const WRITER: &str = "the database writer";

/// A write the writer applies.
#[derive(Clone)]
pub(in crate::store::sea) enum Write {
    /// Store this new ticket and, in the same transaction, its audit entry.
    Ticket(TicketRecord, Option<AuditRecord>),
    /// Delete the ticket this take presents, judge what was found, and
    /// append the take's audit entry, in the same transaction.
    Take(TicketTake),
    /// Append this audit entry.
    Audit(AuditRecord),
}

/// What one write gave back.
#[derive(Debug)]
pub(in crate::store::sea) enum Written {
    /// A ticket or audit entry was stored.
    Stored,
    /// A take's verdict.
    Taken(Verdict),
}

/// The callers' side: hands writes to the writer tasks.
pub(in crate::store::sea) struct Writer {
    queue: Queue<Write, Result<Written>>,
    tap: Tap,
}

/// Where committed audit entries are also sent, once one is set.
type Tap = Arc<OnceLock<Arc<dyn AuditTap>>>;

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("queue", &self.queue)
            .field("tapped", &self.tap.get().is_some())
            .finish()
    }
}

impl Writer {
    /// Starts `writers` writer tasks on `db`, each holding a `gate` permit
    /// while it writes when `db` is the shared pool. They stop once the
    /// writer is dropped and the writes already queued are done.
    pub(in crate::store::sea) fn start(
        db: &DatabaseConnection,
        writers: usize,
        gate: Option<Gate>,
    ) -> Self {
        let db = db.clone();
        let tap = Tap::default();
        let tap_ = tap.clone();
        let queue = Queue::start(WRITER, writers, MAX_BATCH, move |writes| {
            let (db, gate, tap) = (db.clone(), gate.clone(), tap_.clone());
            async move {
                let size = writes.len() as f64;
                metrics::histogram!(crate::metrics::WRITE_BATCH_SIZE).record(size);
                let _permit = match &gate {
                    Some(gate) => match gate.enter().await {
                        Ok(permit) => Some(permit),
                        Err(err) => return writes.iter().map(|_| Err(err.clone())).collect(),
                    },
                    None => None,
                };
                write_batch(&db, &writes, tap.get().map(Arc::as_ref)).await
            }
        });
        Self { queue, tap }
    }

    /// Sends every audit entry committed from now on to `tap` as well;
    /// false when one was set already (it stays).
    pub(in crate::store::sea) fn set_tap(&self, tap: Arc<dyn AuditTap>) -> bool {
        self.tap.set(tap).is_ok()
    }

    /// Applies `write` with whatever else is waiting; returns once it is
    /// committed.
    pub(in crate::store::sea) async fn write(&self, write: Write) -> Result<Written> {
        let answer = self.queue.call(write).await;
        answer.unwrap_or_else(|| Err(queue::stopped(WRITER)))
    }
}

/// One answer per write, in order. A rolled-back part changed nothing, so
/// applying its halves again deletes and appends exactly what it would have.
async fn write_batch(
    db: &DatabaseConnection,
    writes: &[Write],
    tap: Option<&dyn AuditTap>,
) -> Vec<Result<Written>> {
    isolate(writes, |part| apply(db, part, tap)).await
}

/// The rows of a batch, by table.
#[derive(Default)]
struct Rows<'a> {
    tickets: Vec<&'a TicketRecord>,
    takes: Vec<&'a TicketTake>,
    audits: Vec<&'a AuditRecord>,
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
                Write::Take(take) => rows.takes.push(take),
                Write::Audit(entry) => rows.audits.push(entry),
            }
        }
        rows
    }

    /// How many statements writing them takes (a take's audit entry is
    /// one more row of the audit statement).
    fn statements(&self) -> usize {
        let audits = !self.audits.is_empty() || !self.takes.is_empty();
        [!self.tickets.is_empty(), !self.takes.is_empty(), audits]
            .iter()
            .filter(|needed| **needed)
            .count()
    }
}

/// What one attempt at a batch came to.
enum Applied {
    /// Committed: an answer per write, and the audit entries of the takes.
    Done(Vec<Written>, Vec<AuditRecord>),
    /// Rolled back: the takes at these positions found their ticket, but
    /// their callers had gone.
    Abandoned(Vec<usize>),
}

/// Applies `writes`; a batch in which a take found its ticket for a caller
/// that had gone is rolled back and applied again without that take, which
/// is answered as if it found nothing (nobody hears the answer). Rolled
/// back rather than the ticket put back: a row deleted and inserted again
/// is a new row, which a take on another replica waiting for the old one
/// would never see, and that take's caller would be refused a live ticket.
async fn apply(
    db: &DatabaseConnection,
    writes: &[Write],
    tap: Option<&dyn AuditTap>,
) -> DbResult<Vec<Written>> {
    let mut abandoned = match apply_once(db, writes, tap).await? {
        Applied::Done(answers, _) => return Ok(answers),
        Applied::Abandoned(positions) => positions,
    };
    loop {
        let kept: Vec<usize> = (0..writes.len())
            .filter(|i| !abandoned.contains(i))
            .collect();
        let rest: Vec<Write> = kept.iter().map(|&i| writes[i].clone()).collect();
        match apply_once(db, &rest, tap).await? {
            Applied::Done(answers, _) => {
                let mut answers = answers.into_iter();
                let all = (0..writes.len()).map(|i| {
                    if abandoned.contains(&i) {
                        Some(Written::Taken(Err(TicketRejection::Unknown)))
                    } else {
                        answers.next()
                    }
                });
                return Ok(all.flatten().collect());
            }
            Applied::Abandoned(more) => abandoned.extend(more.into_iter().map(|p| kept[p])),
        }
    }
}

async fn apply_once(
    db: &DatabaseConnection,
    writes: &[Write],
    tap: Option<&dyn AuditTap>,
) -> DbResult<Applied> {
    let rows = Rows::of(writes);
    let applied = if rows.statements() <= 1 {
        apply_on(db, writes, &rows).await?
    } else {
        let txn = db.begin().await?;
        let applied = apply_on(&txn, writes, &rows).await?;
        if let Applied::Abandoned(_) = applied {
            txn.rollback().await?;
            return Ok(applied);
        }
        #[cfg(test)]
        tests::panic_if_asked(writes);
        txn.commit().await?;
        applied
    };
    // Only now, committed: an entry rolled back is never sent.
    if let (Some(tap), Applied::Done(_, take_audits)) = (tap, &applied) {
        let entries: Vec<&AuditRecord> = rows.audits.iter().copied().chain(take_audits).collect();
        if !entries.is_empty() {
            tap.committed(&entries);
        }
    }
    Ok(applied)
}

async fn apply_on(
    db: &impl ConnectionTrait,
    writes: &[Write],
    rows: &Rows<'_>,
) -> DbResult<Applied> {
    tickets::insert_tickets(db, &rows.tickets).await?;
    let hashes: Vec<&str> = rows.takes.iter().map(|take| take.hash.as_str()).collect();
    let mut taken: HashMap<String, TicketRecord> = tickets::take_tickets(db, &hashes)
        .await?
        .into_iter()
        .map(|ticket| (ticket.hash.clone(), ticket))
        .collect();
    // Tombstones are looked for only when some take found no live ticket.
    let missed: Vec<&str> = hashes
        .iter()
        .copied()
        .filter(|hash| !taken.contains_key(*hash))
        .collect();
    let mut spent: HashMap<String, SpentTicket> = tickets::find_spent(db, &missed)
        .await?
        .into_iter()
        .map(|spent| (spent.hash.clone(), spent))
        .collect();
    let mut audits = rows.audits.clone();
    let mut take_audits = Vec::with_capacity(rows.takes.len());
    let mut tombstones = Vec::new();
    let mut abandoned = Vec::new();
    let answers: Vec<Written> = writes
        .iter()
        .enumerate()
        .map(|(position, write)| match write {
            Write::Take(take) => {
                // `remove`: a hash asked for twice in one batch goes to the
                // first asker; the second finds the first one's tombstone.
                let found = match taken.remove(&take.hash) {
                    Some(live) => Found::Live(live),
                    None => spent
                        .get(&take.hash)
                        .cloned()
                        .map_or(Found::Nothing, Found::Spent),
                };
                if let (Found::Live(_), true) = (&found, take.caller.is_gone()) {
                    // Nobody will hear of it: the batch is rolled back.
                    abandoned.push(position);
                    return Written::Taken(Err(TicketRejection::Unknown));
                }
                let verdict = take.judge(&found);
                take_audits.push(take.audit_entry(&found, &verdict));
                if let Some(tombstone) = take.tombstone(&found) {
                    spent.insert(tombstone.hash.clone(), tombstone.clone());
                    tombstones.push(tombstone);
                }
                Written::Taken(verdict)
            }
            Write::Ticket(..) | Write::Audit(_) => Written::Stored,
        })
        .collect();
    if !abandoned.is_empty() {
        return Ok(Applied::Abandoned(abandoned));
    }
    tickets::insert_spent(db, &tombstones).await?;
    audits.extend(&take_audits);
    audit::append_audits(db, &audits).await?;
    Ok(Applied::Done(answers, take_audits))
}

#[cfg(test)]
mod tests;
