//! The SQLite statements store and hand back every row exactly as given.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tessera_tests::TestDatabase;

use super::{
    FIND_SPENT, TAKE_TICKETS, append_audits, find_spent, insert_spent, insert_tickets, take_tickets,
};
use crate::store::sea::entities::{spent_ticket, ticket};
use crate::store::{AuditRecord, SeaStore, SpentTicket, TicketRecord};

/// Strings JSON escapes, or SQLite's JSON functions could mangle.
const AWKWARD: [&str; 6] = [
    "",
    "\"q\" \\ /",
    "\t\n\r\u{1}\u{1f}\u{7f}",
    "é 😀 \u{fffd}",
    "a\0b",
    "\0",
];

async fn connect(db: &TestDatabase) -> (SeaStore, DatabaseConnection) {
    let store = SeaStore::connect(db.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    let conn = sea_orm::Database::connect(db.url()).await.expect("connect");
    (store, conn)
}

fn ticket(i: usize, text: &str, minted_at: i64, expires_at: i64) -> TicketRecord {
    TicketRecord {
        hash: format!("h{i}{text}"),
        user_id: format!("u{text}"),
        provider: text.to_owned(),
        purpose: text.to_owned(),
        minted_at,
        expires_at,
    }
}

/// Every awkward string at every position, and the extreme integers.
fn tickets() -> Vec<TicketRecord> {
    let ints = [(i64::MIN, i64::MAX), (0, -1), (1 << 53, (1 << 53) + 1)];
    AWKWARD
        .iter()
        .enumerate()
        .flat_map(|(i, text)| {
            ints.iter()
                .enumerate()
                .map(move |(j, &(a, b))| (i * 3 + j, text, a, b))
        })
        .map(|(i, text, a, b)| ticket(i, text, a, b))
        .collect()
}

fn model(t: &TicketRecord) -> ticket::Model {
    ticket::Model {
        hash: t.hash.clone(),
        user_id: t.user_id.clone(),
        provider: t.provider.clone(),
        purpose: t.purpose.clone(),
        minted_at: t.minted_at,
        expires_at: t.expires_at,
    }
}

fn by_hash<T>(mut rows: Vec<T>, hash: impl Fn(&T) -> &str) -> Vec<T> {
    rows.sort_by(|a, b| hash(a).cmp(hash(b)));
    rows
}

async fn round_trip(batch: &[TicketRecord]) {
    let db = TestDatabase::sqlite();
    let (_store, conn) = connect(&db).await;
    let refs: Vec<&TicketRecord> = batch.iter().collect();
    insert_tickets(&conn, &refs).await.expect("insert");
    // Each hash twice, and one never stored: each row comes back once.
    let hashes: Vec<&str> = batch
        .iter()
        .flat_map(|t| [t.hash.as_str(), t.hash.as_str()])
        .chain(["never-minted"])
        .collect();
    let taken = take_tickets(&conn, &hashes).await.expect("take");
    let stored = batch.iter().map(model).collect();
    assert_eq!(by_hash(taken, |t| &t.hash), by_hash(stored, |t| &t.hash));
    let again = take_tickets(&conn, &hashes).await.expect("take again");
    assert_eq!(again, Vec::new(), "a ticket goes to one take only");
}

#[tokio::test]
async fn tickets_come_back_as_stored() {
    let all = tickets();
    let without_nul: Vec<TicketRecord> = all
        .iter()
        .filter(|t| !t.hash.contains('\0'))
        .cloned()
        .collect();
    round_trip(&without_nul).await;
    round_trip(&all).await;
}

fn tombstone(text: &str) -> SpentTicket {
    SpentTicket {
        hash: format!("s{text}"),
        spent_at: i64::MIN,
        spent_by: text.to_owned(),
        peer: format!("p{text}"),
        expires_at: i64::MAX,
    }
}

fn spent_model(t: &SpentTicket) -> spent_ticket::Model {
    spent_ticket::Model {
        hash: t.hash.clone(),
        spent_at: t.spent_at,
        spent_by: t.spent_by.clone(),
        peer: t.peer.clone(),
        expires_at: t.expires_at,
    }
}

#[tokio::test]
async fn tombstones_come_back_as_stored() {
    let db = TestDatabase::sqlite();
    let (_store, conn) = connect(&db).await;
    let spent: Vec<SpentTicket> = AWKWARD.iter().map(|text| tombstone(text)).collect();
    let (nul, plain): (Vec<_>, Vec<_>) = spent.iter().cloned().partition(|t| t.hash.contains('\0'));
    insert_spent(&conn, &plain).await.expect("insert");
    insert_spent(&conn, &nul).await.expect("insert with NUL");
    let mut hashes: Vec<&str> = spent.iter().map(|t| t.hash.as_str()).collect();
    hashes.push("never-spent");
    let found = find_spent(&conn, &hashes).await.expect("find");
    let stored = spent.iter().map(spent_model).collect();
    assert_eq!(by_hash(found, |t| &t.hash), by_hash(stored, |t| &t.hash));
    let plain_hashes: Vec<&str> = plain.iter().map(|t| t.hash.as_str()).collect();
    let found = find_spent(&conn, &plain_hashes).await.expect("find");
    let stored = plain.iter().map(spent_model).collect();
    assert_eq!(by_hash(found, |t| &t.hash), by_hash(stored, |t| &t.hash));
}

fn entry(i: usize, text: &str) -> AuditRecord {
    AuditRecord {
        at: i64::MAX - i as i64,
        actor: format!("a{text}"),
        action: text.to_owned(),
        resource: format!("r{i}"),
        outcome: text.to_owned(),
        credential_id: text.to_owned(),
        peer: text.to_owned(),
    }
}

/// Entries are stored as given and get their ids in the order given.
#[tokio::test]
async fn audit_entries_keep_their_order_and_text() {
    let db = TestDatabase::sqlite();
    let (store, conn) = connect(&db).await;
    let plain: Vec<AuditRecord> = (0..40).map(|i| entry(i, AWKWARD[i % 4])).collect();
    let nul: Vec<AuditRecord> = (40..44).map(|i| entry(i, AWKWARD[4 + i % 2])).collect();
    for batch in [&plain, &nul] {
        let refs: Vec<&AuditRecord> = batch.iter().collect();
        append_audits(&conn, &refs).await.expect("append");
    }
    let mut newest_first = store.recent_audit_for_tests(100).await.expect("audit");
    newest_first.reverse();
    let given: Vec<AuditRecord> = plain.into_iter().chain(nul).collect();
    assert_eq!(newest_first, given);
}

/// How SQLite runs `sql`: the detail of each step of its plan.
async fn plan(conn: &DatabaseConnection, sql: &str) -> Vec<String> {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let statement = Statement::from_sql_and_values(DbBackend::Sqlite, explain, ["[]".into()]);
    let rows = conn.query_all_raw(statement).await.expect("explain");
    rows.iter()
        .map(|row| row.try_get::<String>("", "detail").expect("detail"))
        .collect()
}

/// A take or a tombstone lookup goes through the hash's index, whatever
/// the table holds (a million live tickets must not be scanned).
#[tokio::test]
async fn hashes_are_looked_up_by_index() {
    let db = TestDatabase::sqlite();
    let (_store, conn) = connect(&db).await;
    for (sql, table) in [(TAKE_TICKETS, "tickets"), (FIND_SPENT, "spent_tickets")] {
        let steps = plan(&conn, sql).await;
        let search = format!("SEARCH {table} USING");
        assert!(
            steps.iter().any(|step| step.starts_with(&search)),
            "{sql}: {steps:?}"
        );
        let scan = format!("SCAN {table}");
        assert!(
            !steps.iter().any(|step| step.starts_with(&scan)),
            "{sql}: {steps:?}"
        );
    }
}
