//! PostgreSQL going away under a running server and coming back: health
//! turns NOT_SERVING, calls that need the database fail UNAVAILABLE and
//! change nothing, calls that do not need it still work, nothing stored
//! before is lost, the same process recovers without a restart, and it still
//! stops cleanly while the database is gone.
//!
//! PostgreSQL is required here: these tests fail, not skip, without it.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use tessera_client::Client;
use tessera_client::tonic::{Code, Status};
use tessera_tests::fixture::Fixture;
use tessera_tests::grpc::{consume_ticket, internal_credential, mint_ticket, verify_bearer};
use tessera_tests::sql::count;
use tessera_tests::{
    CREDENTIAL_SERVICE, ServerOptions, TestDatabase, TestServer, assert_status, scheduler_secret,
};
use tokio::task::JoinHandle;
use tonic_health::pb::health_check_response::ServingStatus;

/// How long a stopped server may take to exit (the drain timeout in tests is
/// 5 s).
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long health may take to follow the database (checked every 200 ms).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Health and recovery
// ---------------------------------------------------------------------------

/// During the outage: health NOT_SERVING for the server and the service;
/// VerifyBearer of a seeded service secret works (the service user is
/// cached), MintTicket and the first GetInternalCredential are UNAVAILABLE.
async fn assert_degraded(server: &TestServer, client: &mut Client) {
    server
        .wait_for_health(ServingStatus::NotServing, HEALTH_TIMEOUT)
        .await;
    assert_eq!(
        server.health_status(CREDENTIAL_SERVICE).await,
        Some(ServingStatus::NotServing)
    );
    let principal = verify_bearer(client, &scheduler_secret())
        .await
        .expect("VerifyBearer of a seeded service secret during the outage");
    assert_eq!(principal.email, "scheduler@system.local");
    let status = mint_ticket(client, "user-1", "ws-upgrade", 0)
        .await
        .expect_err("MintTicket without a database");
    assert_status(&status, Code::Unavailable, None);
    let status = internal_credential(client)
        .await
        .expect_err("the first internal credential needs the database");
    assert_status(&status, Code::Unavailable, None);
    // Still up, still reporting.
    assert_eq!(
        server.health_status("").await,
        Some(ServingStatus::NotServing)
    );
}

/// PostgreSQL stops accepting connections and its sessions are killed:
/// health turns NOT_SERVING, calls that need the database are UNAVAILABLE,
/// calls that do not still work, and everything recovers without a restart.
#[tokio::test]
async fn postgres_outage_reports_not_serving_and_recovers() {
    let db = TestDatabase::postgres_required().await;
    let server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let mut client = server.scheduler().await;
    mint_ticket(&mut client, "user-1", "ws-upgrade", 0)
        .await
        .expect("MintTicket before the outage");

    db.refuse_connections().await;
    assert_degraded(&server, &mut client).await;

    db.allow_connections().await;
    server
        .wait_for_health(ServingStatus::Serving, HEALTH_TIMEOUT)
        .await;
    assert_eq!(
        server.health_status(CREDENTIAL_SERVICE).await,
        Some(ServingStatus::Serving)
    );
    let ticket = mint_ticket(&mut client, "user-1", "ws-upgrade", 0)
        .await
        .expect("MintTicket after the outage");
    let identity = consume_ticket(&mut client, &ticket, "ws-upgrade")
        .await
        .expect("ConsumeTicket after the outage");
    assert_eq!(identity.user_id, "user-1");
    internal_credential(&mut client)
        .await
        .expect("GetInternalCredential after the outage");
}

/// A server whose database is gone still stops cleanly: withdrawing its
/// internal credential fails, but that is no reason to hang or exit non-zero.
#[tokio::test]
async fn sigterm_while_postgres_is_down_still_exits_zero() {
    let db = TestDatabase::postgres_required().await;
    let mut server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let mut client = server.scheduler().await;
    internal_credential(&mut client)
        .await
        .expect("an internal credential, to be withdrawn at shutdown");
    drop(client);

    db.refuse_connections().await;
    server
        .wait_for_health(ServingStatus::NotServing, HEALTH_TIMEOUT)
        .await;

    let started = Instant::now();
    server.terminate();
    let status = server.wait_exit(EXIT_TIMEOUT).await;
    db.allow_connections().await;
    assert_eq!(
        status.code(),
        Some(0),
        "tessera must exit 0 after a signal, got {status:?}; stderr:\n{}",
        server.stderr()
    );
    eprintln!("stopped in {:?} without a database", started.elapsed());
}

// ---------------------------------------------------------------------------
// Calls in flight
// ---------------------------------------------------------------------------

/// Locks the tickets table in a transaction the test holds, so that calls
/// touching tickets wait inside PostgreSQL; the connection and the
/// transaction.
async fn lock_tickets(fx: &Fixture) -> (DatabaseConnection, DatabaseTransaction) {
    let locker = fx.db.connect().await;
    let txn = locker.begin().await.expect("begin");
    txn.execute_unprepared("LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    (locker, txn)
}

/// Waits until `n` sessions of the test database wait for a lock.
async fn wait_for_lock_waiters(fx: &Fixture, n: i64) {
    let name = fx.db.name().expect("name");
    let watcher = fx.db.connect().await;
    let waiting = format!(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{name}' AND wait_event_type = 'Lock'"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&watcher, &waiting).await < n {
        assert!(
            Instant::now() < deadline,
            "the calls never blocked on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = watcher.close().await;
}

/// The result of a call spawned earlier, within 15 s.
async fn join<T>(call: JoinHandle<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .unwrap_or_else(|_| panic!("{what} returns"))
        .expect("task")
}

/// Calls blocked inside PostgreSQL when the database goes away (a lock the
/// test holds keeps them there) must fail UNAVAILABLE, like calls that find
/// no connection, and must change nothing: the ticket a cut-off
/// ConsumeTicket was spending is still there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_flight_when_postgres_goes_away_fail_unavailable_and_change_nothing() {
    let fx = Fixture::on(TestDatabase::postgres_required().await, &[]).await;
    let mut client = fx.server.scheduler().await;
    let victim = mint_ticket(&mut client, "in-flight", "ws-upgrade", 300)
        .await
        .expect("mint");

    let (locker, lock) = lock_tickets(&fx).await;
    let blocked_mint = {
        let mut client = client.clone();
        tokio::spawn(async move { mint_ticket(&mut client, "blocked", "", 0).await })
    };
    let blocked_consume = {
        let (mut client, victim) = (client.clone(), victim.clone());
        tokio::spawn(async move { consume_ticket(&mut client, &victim, "ws-upgrade").await })
    };
    wait_for_lock_waiters(&fx, 2).await;

    // The database goes away under them.
    fx.db.refuse_connections().await;
    let minted = join(blocked_mint, "the blocked MintTicket").await;
    let consumed = join(blocked_consume, "the blocked ConsumeTicket").await;
    drop(lock);
    let _ = locker.close().await;
    fx.server
        .wait_for_health(ServingStatus::NotServing, HEALTH_TIMEOUT)
        .await;
    fx.db.allow_connections().await;
    fx.server
        .wait_for_health(ServingStatus::Serving, HEALTH_TIMEOUT)
        .await;
    eprintln!(
        "outages: calls in flight when PostgreSQL went away: MintTicket {:?}, ConsumeTicket {:?}",
        minted.as_ref().map(|_| "OK").map_err(Status::code),
        consumed.as_ref().map(|_| "OK").map_err(Status::code),
    );

    // Whatever the answers, nothing was lost: the ticket is still there
    // unless the ConsumeTicket call reported spending it.
    let status = consume_ticket(&mut client, &victim, "ws-upgrade").await;
    match &consumed {
        Ok(_) => {
            let status = status.expect_err("spent by the in-flight call");
            assert_status(&status, Code::Unauthenticated, Some("TICKET_REPLAYED"));
        }
        Err(_) => {
            let identity = status.expect("a cut-off ConsumeTicket spent nothing");
            assert_eq!(identity.user_id, "in-flight");
        }
    }
    for (rpc, result) in [
        ("MintTicket", minted.err()),
        ("ConsumeTicket", consumed.err()),
    ] {
        if let Some(status) = result {
            assert_eq!(
                status.code(),
                Code::Unavailable,
                "{rpc} in flight when the database went away: {status:?}; server errors:\n{}",
                fx.server.error_lines(4)
            );
        }
    }
    fx.assert_survived().await;
}
