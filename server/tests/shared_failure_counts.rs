//! The failure counters replicas share on PostgreSQL: counts add up per key
//! and minute, a new minute keeps the last one's count as `previous`, and
//! keys idle for two minutes are pruned. On SQLite nothing is shared.

use sea_orm::{ConnectionTrait, TransactionTrait};
use tessera_server::store::{FailureTally, SeaStore, Store};
use tessera_tests::TestDatabase;
use tessera_tests::sql::{count, rows};

async fn open(db: &TestDatabase) -> SeaStore {
    let store = SeaStore::connect(db.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

fn failures(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// `key`'s tally among `tallies`.
fn tally<'a>(tallies: &'a [FailureTally], key: &str) -> &'a FailureTally {
    tallies
        .iter()
        .find(|t| t.key == key)
        .unwrap_or_else(|| panic!("no tally for {key} in {tallies:?}"))
}

/// Adds `n` failures of `key` alone and returns its (count, previous).
async fn add(store: &SeaStore, key: &str, n: u32) -> (i64, i64) {
    let tallies = store
        .add_auth_failures(&failures(&[(key, n)]))
        .await
        .expect("add");
    assert_eq!(tallies.len(), 1, "only the keys written come back");
    let tally = tally(&tallies, key);
    (tally.count, tally.previous)
}

/// Moves every counter `minutes` back in time, as if they were written then.
async fn age(db: &TestDatabase, minutes: i64) {
    let conn = db.connect().await;
    let sql = format!("UPDATE auth_failures SET window_start = window_start - {minutes}");
    rows(&conn, &sql).await;
}

#[tokio::test]
async fn counts_add_up_and_roll_over_by_the_minute_on_postgres() {
    let db = TestDatabase::postgres_required().await;
    let store = open(&db).await;
    let first = store
        .add_auth_failures(&failures(&[("peer:10.0.0.1", 2), ("credential:a", 1)]))
        .await
        .expect("add");
    assert_eq!(tally(&first, "peer:10.0.0.1").count, 2);
    let elapsed = tally(&first, "credential:a").elapsed_ms;
    assert!(
        (0..60_000).contains(&elapsed),
        "{elapsed} ms into the minute"
    );
    assert_eq!(add(&store, "peer:10.0.0.1", 3).await, (5, 0));
    age(&db, 1).await;
    let next_minute = add(&store, "peer:10.0.0.1", 1).await;
    assert_eq!(next_minute, (1, 5), "the last minute moved back");
    age(&db, 2).await;
    let later = add(&store, "peer:10.0.0.1", 1).await;
    assert_eq!(later, (1, 0), "two minutes idle: forgotten");
}

#[tokio::test]
async fn idle_keys_are_pruned_on_postgres() {
    let db = TestDatabase::postgres_required().await;
    let store = open(&db).await;
    store
        .add_auth_failures(&failures(&[("old", 1), ("recent", 1), ("fresh", 1)]))
        .await
        .expect("add");
    let conn = db.connect().await;
    rows(
        &conn,
        "UPDATE auth_failures SET window_start = window_start - 2 WHERE key = 'old'",
    )
    .await;
    rows(
        &conn,
        "UPDATE auth_failures SET window_start = window_start - 1 WHERE key = 'recent'",
    )
    .await;
    assert_eq!(
        store
            .delete_stale_auth_failures(1_000)
            .await
            .expect("prune"),
        1
    );
    let left = count(
        &conn,
        "SELECT COUNT(*) FROM auth_failures WHERE key <> 'old'",
    )
    .await;
    assert_eq!(left, 2, "the last minute's and this minute's counters stay");
}

/// A counter another replica refreshes while the pruning waits for its row
/// is not pruned: its age is checked again on the row the refresh left.
#[tokio::test]
async fn a_counter_refreshed_while_pruning_waits_is_kept_on_postgres() {
    let db = TestDatabase::postgres_required().await;
    let store = open(&db).await;
    add(&store, "refreshed", 1).await;
    age(&db, 5).await;
    let conn = db.connect().await;
    let refresh = conn.begin().await.expect("begin");
    refresh
        .execute_unprepared(
            "UPDATE auth_failures SET count = 25, \
             window_start = (extract(epoch FROM clock_timestamp()) * 1000)::int8 / 60000 \
             WHERE key = 'refreshed'",
        )
        .await
        .expect("refresh");
    let prune = tokio::spawn(async move { store.delete_stale_auth_failures(1_000).await });
    // Long enough for the pruning to pick the row and wait for its lock.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    refresh.commit().await.expect("commit");
    let pruned = prune.await.expect("prune task").expect("prune");
    assert_eq!(pruned, 0, "a counter refreshed this minute was pruned");
    let kept = count(&conn, "SELECT COUNT(*) FROM auth_failures WHERE count = 25").await;
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn nothing_is_shared_on_sqlite() {
    let db = TestDatabase::sqlite();
    let store = open(&db).await;
    let tallies = store
        .add_auth_failures(&failures(&[("peer:10.0.0.1", 1)]))
        .await
        .expect("add");
    assert!(tallies.is_empty());
    let conn = db.connect().await;
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM auth_failures").await, 0);
    assert_eq!(
        store
            .delete_stale_auth_failures(1_000)
            .await
            .expect("prune"),
        0
    );
}
