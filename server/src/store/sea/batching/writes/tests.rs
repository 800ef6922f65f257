//! The group commit on both backends: panics, and bad writes in a batch.

use std::sync::Mutex;

use tessera_tests::TestDatabase;

use super::{MAX_BATCH, Write, Written, apply};
use crate::store::sea::batching::isolate::isolate;
use crate::store::{
    AuditDraft, AuditRecord, AuditTap, CallerWaiting, SeaStore, Store, StoreError, TicketRecord,
    TicketTake,
};

/// The action of an audit entry that makes the writer panic after its
/// statements and before its commit.
const PANIC_BEFORE_COMMIT: &str = "test.panic_before_commit";

pub(super) fn panic_if_asked(writes: &[Write]) {
    let asked = writes.iter().any(|write| match write {
        Write::Ticket(_, Some(entry)) | Write::Audit(entry) => entry.action == PANIC_BEFORE_COMMIT,
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

/// Keeps every entry it is told of.
#[derive(Default)]
struct Recorder(Mutex<Vec<AuditRecord>>);

impl AuditTap for Recorder {
    fn committed(&self, entries: &[&AuditRecord]) {
        if let Ok(mut kept) = self.0.lock() {
            kept.extend(entries.iter().map(|entry| (*entry).clone()));
        }
    }
}

/// A panic while a batch is written fails that batch's calls as
/// unavailable and rolls it back; the writer is restarted and later
/// writes succeed.
async fn the_writer_survives_a_panic(db: &TestDatabase) {
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
    the_writer_survives_a_panic(&TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_survives_a_panic_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    the_writer_survives_a_panic(&db).await;
}

/// A ticket on file that a batch mints again: the insert breaks the
/// primary key, on either backend.
const DUPLICATE: &str = "h-duplicate";

fn take(hash: &str) -> TicketTake {
    TicketTake {
        hash: hash.to_owned(),
        purpose: String::new(),
        now: 2_000,
        audit: AuditDraft {
            at: 2_000,
            actor: "svc@system.local".into(),
            action: "ticket.consume".into(),
            resource: "tkt_0".into(),
            credential_id: String::new(),
            peer: String::new(),
        },
        caller: CallerWaiting::default(),
    }
}

/// A full batch of mints, takes of tickets on file (`old-<i>`) and audit
/// entries, with `bad` at index `bad_at`.
fn batch(bad_at: usize, bad: Write) -> Vec<Write> {
    let mut bad = Some(bad);
    (0..MAX_BATCH)
        .map(|i| match (bad.take_if(|_| i == bad_at), i % 3) {
            (Some(bad), _) => bad,
            (None, 0) => Write::Ticket(ticket(&format!("new-{i}")), Some(entry("ticket.mint"))),
            (None, 1) => Write::Take(take(&format!("old-{i}"))),
            (None, _) => Write::Audit(entry("audit")),
        })
        .collect()
}

/// Attempts a batch of `n` writes with one bad write may take: a failed
/// part is split in halves, so two per halving and the first.
fn logarithmic_bound(n: usize) -> usize {
    2 * n.next_power_of_two().ilog2() as usize + 1
}

/// The write the database refuses fails alone, every other write of its
/// batch is committed with its own answer, and finding it took a number of
/// attempts logarithmic in the batch's size. The tap is told of exactly the
/// entries committed, once each, however many halves were rolled back.
async fn a_bad_write_fails_alone(db: &TestDatabase, bad_at: usize, bad: Write) {
    let store = SeaStore::connect(db.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    let conn = sea_orm::Database::connect(db.url()).await.expect("connect");
    let on_file: Vec<Write> = (0..MAX_BATCH)
        .filter(|i| i % 3 == 1)
        .map(|i| Write::Ticket(ticket(&format!("old-{i}")), None))
        .chain([Write::Ticket(ticket(DUPLICATE), None)])
        .collect();
    apply(&conn, &on_file, None).await.expect("tickets on file");

    let writes = batch(bad_at, bad);
    let mut attempts = 0;
    let recorder = Recorder::default();
    let answers = isolate(&writes, |part| {
        attempts += 1;
        apply(&conn, part, Some(&recorder))
    })
    .await;
    assert_eq!(answers.len(), writes.len(), "one answer per write");
    let (mut minted, mut taken) = (0, 0);
    for (i, (write, answer)) in writes.iter().zip(&answers).enumerate() {
        match (i == bad_at, write, answer) {
            (true, _, Err(StoreError::Db(_))) => {}
            (false, Write::Ticket(..), Ok(Written::Stored)) => minted += 1,
            (false, Write::Take(_), Ok(Written::Taken(Ok(_)))) => taken += 1,
            (false, Write::Audit(_), Ok(Written::Stored)) => {}
            _ => panic!("write {i} (the bad one at {bad_at}): {answer:?}"),
        }
    }
    let bound = logarithmic_bound(writes.len());
    assert!(
        attempts <= bound,
        "{attempts} attempts to isolate one bad write among {}; at most {bound}",
        writes.len()
    );
    let tickets = store.count_tickets_for_tests().await.expect("count");
    assert_eq!(tickets, (on_file.len() + minted - taken) as u64);
    let audited = store.recent_audit_for_tests(10_000).await.expect("audit");
    assert_eq!(audited.len(), writes.len() - 1, "every good write's entry");
    let mut tapped = recorder.0.into_inner().expect("recorded");
    let mut audited = audited;
    let key = |e: &AuditRecord| {
        let texts = [
            &e.actor,
            &e.action,
            &e.resource,
            &e.outcome,
            &e.credential_id,
            &e.peer,
        ];
        (e.at, texts.map(String::clone))
    };
    tapped.sort_by_key(key);
    audited.sort_by_key(key);
    assert!(
        tapped == audited,
        "the tap saw {} entries, not the {} committed, once each",
        tapped.len(),
        audited.len()
    );
}

/// Where in a batch the bad write is tried: the middle, first and last.
const BAD_AT: [usize; 3] = [300, 0, MAX_BATCH - 1];

fn duplicate() -> Write {
    Write::Ticket(ticket(DUPLICATE), Some(entry("ticket.mint")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_ticket_fails_alone_in_few_attempts_on_sqlite() {
    for bad_at in BAD_AT {
        a_bad_write_fails_alone(&TestDatabase::sqlite(), bad_at, duplicate()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_ticket_fails_alone_in_few_attempts_on_postgres() {
    for bad_at in BAD_AT {
        let Some(db) = TestDatabase::postgres().await else {
            return;
        };
        a_bad_write_fails_alone(&db, bad_at, duplicate()).await;
    }
}

/// PostgreSQL refuses U+0000 in text: an audit entry or a ticket holding
/// one (as validation and escaping no longer let through) fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_fails_alone_in_few_attempts_on_postgres() {
    let audit = AuditRecord {
        resource: "\0".into(),
        ..entry("audit")
    };
    let mint = TicketRecord {
        user_id: "u\0x".into(),
        ..ticket("new-nul")
    };
    let bad = [
        (301, Write::Audit(audit)),
        (0, Write::Ticket(mint, Some(entry("ticket.mint")))),
    ];
    for (bad_at, write) in bad {
        let Some(db) = TestDatabase::postgres().await else {
            return;
        };
        a_bad_write_fails_alone(&db, bad_at, write).await;
    }
}

/// A batch of tickets with no audit entries, one of them a duplicate: the
/// duplicate fails alone and every other ticket is stored once, answered as
/// stored (a batch of one table's rows is all or nothing too, however its
/// rows are sent).
async fn a_duplicate_among_bare_tickets_fails_alone(db: &TestDatabase) {
    let store = SeaStore::connect(db.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    let conn = sea_orm::Database::connect(db.url()).await.expect("connect");
    let on_file = [Write::Ticket(ticket(DUPLICATE), None)];
    apply(&conn, &on_file, None).await.expect("ticket on file");

    let bad_at = 5;
    let writes: Vec<Write> = (0..8)
        .map(|i| {
            let hash = if i == bad_at {
                DUPLICATE.to_owned()
            } else {
                format!("bare-{i}")
            };
            Write::Ticket(ticket(&hash), None)
        })
        .collect();
    let answers = isolate(&writes, |part| apply(&conn, part, None)).await;
    for (i, answer) in answers.iter().enumerate() {
        match (i == bad_at, answer) {
            (true, Err(StoreError::Db(_))) | (false, Ok(Written::Stored)) => {}
            _ => panic!("write {i} (the bad one at {bad_at}): {answer:?}"),
        }
    }
    let tickets = store.count_tickets_for_tests().await.expect("count");
    assert_eq!(tickets, writes.len() as u64, "the one on file and 7 new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_among_bare_tickets_fails_alone_on_sqlite() {
    a_duplicate_among_bare_tickets_fails_alone(&TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_among_bare_tickets_fails_alone_on_postgres() {
    if let Some(db) = TestDatabase::postgres().await {
        a_duplicate_among_bare_tickets_fails_alone(&db).await;
    }
}
