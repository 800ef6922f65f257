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
//! lone write runs with no transaction around it.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

use super::queue::{self, Queue};
use crate::store::sea::error::{is_outage, store_error};
use crate::store::sea::gate::Gate;
use crate::store::sea::{DbResult, audit, tickets};
use crate::store::{AuditRecord, Result, StoreError, TicketRecord, TicketTake, Verdict};

/// Most writes in one batch. Bounds a statement's bind parameters (7 per
/// audit entry) well below PostgreSQL's 65,535 and SQLite's 32,766.
const MAX_BATCH: usize = 512;
/// The writer tasks, as logs and errors name them.
const WRITER: &str = "the database writer";

/// A write the writer applies.
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
#[derive(Debug)]
pub(in crate::store::sea) struct Writer {
    queue: Queue<Write, Result<Written>>,
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
        let queue = Queue::start(WRITER, writers, MAX_BATCH, move |writes| {
            let (db, gate) = (db.clone(), gate.clone());
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
                write_batch(&db, &writes).await
            }
        });
        Self { queue }
    }

    /// Applies `write` with whatever else is waiting; returns once it is
    /// committed.
    pub(in crate::store::sea) async fn write(&self, write: Write) -> Result<Written> {
        let answer = self.queue.call(write).await;
        answer.unwrap_or_else(|| Err(queue::stopped(WRITER)))
    }
}

/// One answer per write, in order.
async fn write_batch(db: &DatabaseConnection, writes: &[Write]) -> Vec<Result<Written>> {
    match apply(db, writes).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        // One bad write (or, on PostgreSQL, a deadlock with the reaper)
        // must not fail the calls batched with it. The transaction rolled
        // back, so each write is applied again on its own.
        Err(err) if writes.len() > 1 && !is_outage(&err) => {
            let mut answers = Vec::with_capacity(writes.len());
            for write in writes {
                let alone = apply(db, std::slice::from_ref(write)).await;
                answers.push(match alone {
                    Ok(mut written) => written
                        .pop()
                        .ok_or_else(|| StoreError::Db("a write gave no answer".to_owned())),
                    Err(err) => Err(store_error(&err)),
                });
            }
            answers
        }
        Err(err) => {
            let err = store_error(&err);
            writes.iter().map(|_| Err(err.clone())).collect()
        }
    }
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

async fn apply(db: &DatabaseConnection, writes: &[Write]) -> DbResult<Vec<Written>> {
    let rows = Rows::of(writes);
    if rows.statements() == 1 {
        return apply_on(db, writes, rows).await;
    }
    let txn = db.begin().await?;
    let answers = apply_on(&txn, writes, rows).await?;
    #[cfg(test)]
    tests::panic_if_asked(writes);
    txn.commit().await?;
    Ok(answers)
}

async fn apply_on(
    db: &impl ConnectionTrait,
    writes: &[Write],
    rows: Rows<'_>,
) -> DbResult<Vec<Written>> {
    tickets::insert_tickets(db, &rows.tickets).await?;
    let hashes: Vec<&str> = rows.takes.iter().map(|take| take.hash.as_str()).collect();
    let mut taken: HashMap<String, TicketRecord> = tickets::take_tickets(db, &hashes)
        .await?
        .into_iter()
        .map(|ticket| (ticket.hash.clone(), ticket))
        .collect();
    let mut audits = rows.audits;
    let mut take_audits = Vec::with_capacity(rows.takes.len());
    let answers: Vec<Written> = writes
        .iter()
        .map(|write| match write {
            Write::Take(take) => {
                // `remove`: a hash asked for twice in one batch goes to the
                // first asker.
                let verdict = take.judge(taken.remove(&take.hash));
                take_audits.push(take.audit_entry(&verdict));
                Written::Taken(verdict)
            }
            Write::Ticket(..) | Write::Audit(_) => Written::Stored,
        })
        .collect();
    audits.extend(&take_audits);
    audit::append_audits(db, &audits).await?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::Write;
    use crate::store::{AuditRecord, SeaStore, Store, StoreError, TicketRecord};

    /// The action of an audit entry that makes the writer panic after its
    /// statements and before its commit.
    const PANIC_BEFORE_COMMIT: &str = "test.panic_before_commit";

    pub(super) fn panic_if_asked(writes: &[Write]) {
        let asked = writes.iter().any(|write| match write {
            Write::Ticket(_, Some(entry)) | Write::Audit(entry) => {
                entry.action == PANIC_BEFORE_COMMIT
            }
            _ => false,
        });
        assert!(!asked, "the writer panicked on purpose");
    }

    fn ticket(hash: &str) -> TicketRecord {
        TicketRecord {
            hash: hash.to_owned(),
            user_id: "u1".into(),
            provider: "github".into(),
            purpose: String::new(),
            minted_at: 1_000,
            expires_at: i64::MAX,
        }
    }

    fn entry(action: &str) -> AuditRecord {
        AuditRecord {
            at: 1,
            actor: "svc@system.local".into(),
            action: action.into(),
            resource: "r".into(),
            outcome: "ok".into(),
            credential_id: String::new(),
            peer: String::new(),
        }
    }

    /// A panic while a batch is written fails that batch's calls as
    /// unavailable and rolls it back; the writer is restarted and later
    /// writes succeed.
    async fn the_writer_survives_a_panic(db: &tessera_tests::TestDatabase) {
        let store = SeaStore::connect(db.url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let explode = entry(PANIC_BEFORE_COMMIT);
        let failed = store
            .insert_ticket(&ticket("h-panic"), Some(&explode))
            .await;
        assert!(
            matches!(failed, Err(StoreError::Unavailable(_))),
            "{failed:?}"
        );
        store
            .insert_ticket(&ticket("h-after"), Some(&entry("after")))
            .await
            .expect("insert after the panic");
        let tickets = store.count_tickets_for_tests().await.expect("count");
        assert_eq!(tickets, 1, "the panicked batch rolled back");
        let audited = store.recent_audit_for_tests(10).await.expect("recent");
        let actions: Vec<_> = audited.iter().map(|entry| entry.action.as_str()).collect();
        assert_eq!(actions, ["after"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_survives_a_panic_on_sqlite() {
        the_writer_survives_a_panic(&tessera_tests::TestDatabase::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_survives_a_panic_on_postgres() {
        let Some(db) = tessera_tests::TestDatabase::postgres().await else {
            return;
        };
        the_writer_survives_a_panic(&db).await;
    }
}
