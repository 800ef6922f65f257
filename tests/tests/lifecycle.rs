//! The process's life: `tessera` without arguments serves from a default
//! SQLite file, it is not SERVING before its migrations ran, and SIGTERM or
//! SIGINT turn it NOT_SERVING, drain the calls in flight (for a bounded
//! time) and end it with exit status 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};
use tessera_client::Client;
use tessera_client::tonic::Status;
use tessera_client::tonic::Streaming;
use tessera_client::tonic::transport::Channel;
use tessera_tests::grpc::{transport_failed, verify_bearer};
use tessera_tests::sql::hold_write_lock;
use tessera_tests::{
    CREDENTIAL_SERVICE, ServerOptions, ServerProcess, TestDatabase, TestServer, health_at,
    mint_ticket, scheduler_secret,
};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// How long a stopped server may take to exit (the drain timeout in tests is
/// 5 s).
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A MintTicket on `client`; `Ok` holds the ticket.
async fn mint(client: &mut Client) -> Result<String, Status> {
    mint_ticket(client, "user-1", "ws-upgrade", 0).await
}

/// Reads a health `Watch` stream until it reports `NOT_SERVING`; panics if
/// the stream ends, fails or stays silent first.
async fn expect_not_serving(stream: &mut Streaming<HealthCheckResponse>, what: &str) {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.message()).await {
            Err(_) => panic!("{what}: no NOT_SERVING within {EXIT_TIMEOUT:?}"),
            Ok(Err(status)) => panic!("{what}: watch failed before NOT_SERVING: {status:?}"),
            Ok(Ok(None)) => panic!("{what}: watch ended before reporting NOT_SERVING"),
            Ok(Ok(Some(response))) => {
                if response.status() == ServingStatus::NotServing {
                    return;
                }
                assert_eq!(
                    response.status(),
                    ServingStatus::Serving,
                    "{what}: unexpected status during shutdown"
                );
            }
        }
    }
}

/// Opens a `Watch` on `service` and checks its first answer is `SERVING`.
async fn watch_serving(server: &TestServer, service: &str) -> Streaming<HealthCheckResponse> {
    let mut health: HealthClient<Channel> = server.health().await;
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let mut stream = health.watch(request).await.expect("watch").into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("first watch answer in time")
        .expect("watch answer")
        .expect("watch stream open");
    assert_eq!(first.status(), ServingStatus::Serving, "watch {service:?}");
    stream
}

// ---------------------------------------------------------------------------
// Starting
// ---------------------------------------------------------------------------

/// `tessera` without arguments serves, on `TESSERA_LISTEN`, from
/// `tessera.db` in the working directory, created on first run.
#[tokio::test]
async fn no_arguments_serves_from_a_default_sqlite_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("tessera.db");
    assert!(!file.exists());
    let options = ServerOptions::new()
        .args(&[])
        .current_dir(dir.path())
        .env("TESSERA_LISTEN", "127.0.0.1:0");
    let mut server =
        TestServer::ready(ServerProcess::spawn(&options), Duration::from_secs(30)).await;
    assert!(
        server.addr.ip().is_loopback(),
        "listening on {}",
        server.addr
    );
    assert_ne!(server.addr.port(), 0);
    assert!(
        file.exists(),
        "tessera.db was not created in the working directory"
    );
    assert_eq!(
        server.health_status(CREDENTIAL_SERVICE).await,
        Some(ServingStatus::Serving)
    );

    server.terminate();
    server.wait_exit_zero(EXIT_TIMEOUT).await;

    // Migrations ran against that file.
    let conn = Database::connect(format!("sqlite:{}", file.display()))
        .await
        .expect("open tessera.db");
    conn.execute_unprepared("SELECT COUNT(*) FROM seaql_migrations")
        .await
        .expect("migrations were applied to tessera.db");
}

/// Probes `process` for `hold`: whenever it has an address, its health
/// must not be SERVING, and it must not give up. Returns the probe count.
async fn probe_while_migrations_wait(process: &mut ServerProcess, hold: Duration) -> usize {
    let held_until = Instant::now() + hold;
    let mut probes = 0;
    while Instant::now() < held_until {
        if let Some(addr) = process.addr() {
            let status = health_at(addr, "").await;
            assert_ne!(
                status,
                Some(ServingStatus::Serving),
                "SERVING before migrations could run; stderr:\n{}",
                process.stderr()
            );
            probes += 1;
        }
        assert!(
            process.exited().is_none(),
            "tessera gave up while the database was busy; stderr:\n{}",
            process.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    probes
}

/// Health is not SERVING before migrations are applied: here they wait for
/// a write lock another connection holds on the SQLite file.
#[tokio::test]
async fn not_serving_until_migrations_are_applied() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}", dir.path().join("locked.db").display());
    let conn = Database::connect(format!("{url}?mode=rwc"))
        .await
        .expect("create the SQLite file");
    conn.execute_unprepared("PRAGMA journal_mode=WAL")
        .await
        .expect("WAL");
    let lock = hold_write_lock(&conn).await;

    let options = ServerOptions::new()
        .database_url(&url)
        .current_dir(dir.path());
    let mut process = ServerProcess::spawn(&options);
    let probes = probe_while_migrations_wait(&mut process, Duration::from_secs(2)).await;
    lock.rollback().await.expect("release the write lock");

    let mut server = TestServer::ready(process, Duration::from_secs(15)).await;
    eprintln!("{probes} probes while the database was locked");
    server.terminate();
    server.wait_exit_zero(EXIT_TIMEOUT).await;
}

// ---------------------------------------------------------------------------
// Signals and draining
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sigterm_reports_not_serving_to_watchers_then_exits_zero() {
    let db = TestDatabase::sqlite();
    let mut server = TestServer::start(&db, ServerOptions::new()).await;
    let mut server_watch = watch_serving(&server, "").await;
    let mut service_watch = watch_serving(&server, CREDENTIAL_SERVICE).await;

    server.terminate();
    expect_not_serving(&mut server_watch, "watch \"\"").await;
    expect_not_serving(&mut service_watch, "watch CredentialService").await;
    // The watchers hang up, as a real health checker would once told.
    drop(server_watch);
    drop(service_watch);

    server.wait_exit_zero(EXIT_TIMEOUT).await;
}

/// A SIGTERM at any moment after the `listening` line (here: while the
/// migrations still run) stops the server cleanly, never by the signal's
/// default action.
#[tokio::test]
async fn sigterm_right_after_listening_exits_zero() {
    for _ in 0..5 {
        let db = TestDatabase::sqlite();
        let options = ServerOptions::new().database_url(db.url());
        let mut process = ServerProcess::spawn(&options);
        process.wait_listening(Duration::from_secs(30)).await;
        process.terminate();
        process.wait_exit_zero(EXIT_TIMEOUT).await;
    }
}

#[tokio::test]
async fn sigint_reports_not_serving_then_exits_zero() {
    let db = TestDatabase::sqlite();
    let mut server = TestServer::start(&db, ServerOptions::new()).await;
    let mut watch = watch_serving(&server, "").await;

    server.interrupt();
    expect_not_serving(&mut watch, "watch after SIGINT").await;
    drop(watch);

    server.wait_exit_zero(EXIT_TIMEOUT).await;
}

/// A call in flight when SIGTERM arrives completes: the server stops taking
/// new work but does not cut what it already accepted. The call is made slow
/// by holding SQLite's write lock, which MintTicket must wait for.
#[tokio::test]
async fn sigterm_drains_an_in_flight_call() {
    let db = TestDatabase::sqlite();
    let mut server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let mut client = server.scheduler().await;
    mint(&mut client)
        .await
        .expect("MintTicket works before the test");

    let conn = db.connect().await;
    let lock = hold_write_lock(&conn).await;
    let started = Instant::now();
    let call = tokio::spawn(async move { mint(&mut client).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !call.is_finished(),
        "MintTicket did not wait for the write lock; the test cannot hold a call in flight"
    );

    server.terminate();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !call.is_finished(),
        "the in-flight call ended while the server was draining: {:?}",
        call.await
    );
    // Draining, it has stopped listening: a new client is refused at once
    // rather than left waiting in the backlog.
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "the listener stayed open during the drain"
    );
    lock.rollback().await.expect("release the write lock");

    let result = tokio::time::timeout(EXIT_TIMEOUT, call)
        .await
        .expect("the in-flight call finishes")
        .expect("task");
    let ticket = result.unwrap_or_else(|status| {
        panic!(
            "the in-flight call failed during the drain: {status:?}; stderr:\n{}",
            server.stderr()
        )
    });
    assert!(ticket.starts_with("tsr_"), "ticket {ticket:.8}…");
    assert!(started.elapsed() >= Duration::from_millis(2000));

    server.wait_exit_zero(EXIT_TIMEOUT).await;
}

/// The drain is bounded: a call still running when `TESSERA_DRAIN_TIMEOUT_MS`
/// runs out is cut, and the process exits 0 soon after, even when that call
/// is stuck waiting for the database (here: SQLite's write lock, held by the
/// test for longer than the drain timeout).
#[tokio::test]
async fn drain_timeout_bounds_shutdown_with_a_call_stuck_on_the_database() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::scheduler().env("TESSERA_DRAIN_TIMEOUT_MS", "1000");
    let mut server = TestServer::start(&db, options).await;
    let mut client = server.scheduler().await;

    let conn = db.connect().await;
    let lock = hold_write_lock(&conn).await;
    let call = tokio::spawn(async move { mint(&mut client).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!call.is_finished(), "MintTicket did not wait for the lock");

    let signalled = Instant::now();
    server.terminate();
    // 1 s of drain, plus generous slack; far less than SQLite's busy wait.
    server.wait_exit_zero(Duration::from_secs(4)).await;
    let took = signalled.elapsed();
    let result = tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .expect("the cut call ends with the process")
        .expect("task");
    assert!(
        result.is_err(),
        "the stuck call cannot have succeeded while the lock was held"
    );
    lock.rollback().await.expect("release the write lock");
    eprintln!("exited {took:?} after SIGTERM with a stuck call");
}

/// What the workers racing SIGTERM count together.
#[derive(Clone, Default)]
struct RaceCounts {
    succeeded: Arc<AtomicUsize>,
    after_signal: Arc<AtomicUsize>,
    signalled: Arc<AtomicBool>,
}

/// Failures after which a worker racing SIGTERM stops.
const FAILURES_PER_WORKER: usize = 3;

/// One call that must neither hang nor answer wrongly: VerifyBearer of the
/// scheduler's own secret (no database write), or a MintTicket (a write).
async fn call_during_shutdown(client: &mut Client, verify: bool) -> Result<(), Status> {
    let limit = Duration::from_secs(8);
    if verify {
        let secret = scheduler_secret();
        let principal = tokio::time::timeout(limit, verify_bearer(client, &secret))
            .await
            .expect("VerifyBearer hung during shutdown")?;
        assert_eq!(principal.email, "scheduler@system.local");
    } else {
        let ticket = tokio::time::timeout(limit, mint(client))
            .await
            .expect("MintTicket hung during shutdown")?;
        assert!(ticket.starts_with("tsr_"));
    }
    Ok(())
}

/// Calls on `client`, alternating reads and writes, until three have failed
/// (or `deadline`); returns the failures.
async fn call_until_refused(
    mut client: Client,
    worker: usize,
    counts: RaceCounts,
    deadline: Instant,
) -> Vec<Status> {
    let mut failures = Vec::new();
    for i in 0..10_000 {
        if failures.len() >= FAILURES_PER_WORKER || Instant::now() > deadline {
            break;
        }
        let was_signalled = counts.signalled.load(Ordering::SeqCst);
        match call_during_shutdown(&mut client, (worker + i).is_multiple_of(2)).await {
            Ok(()) => {
                counts.succeeded.fetch_add(1, Ordering::SeqCst);
                if was_signalled {
                    counts.after_signal.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(status) => failures.push(status),
        }
    }
    failures
}

/// Calls racing SIGTERM, from several connections at once, either succeed
/// or fail because the connection went away (the server is gone): none
/// hangs, none gets a broken or internal error, and the exit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_sigterm_succeed_or_fail_cleanly() {
    const WORKERS: usize = 4;
    let db = TestDatabase::sqlite();
    let mut server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let counts = RaceCounts::default();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let client = server.scheduler().await;
        workers.push(tokio::spawn(call_until_refused(
            client,
            worker,
            counts.clone(),
            deadline,
        )));
    }

    while counts.succeeded.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < deadline, "the workers never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    counts.signalled.store(true, Ordering::SeqCst);
    server.terminate();

    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.expect("worker"));
    }
    eprintln!(
        "{} calls succeeded, {} of them started after SIGTERM; failures: {:?}",
        counts.succeeded.load(Ordering::SeqCst),
        counts.after_signal.load(Ordering::SeqCst),
        failures.iter().map(Status::code).collect::<Vec<_>>()
    );
    assert_eq!(
        failures.len(),
        FAILURES_PER_WORKER * WORKERS,
        "calls kept succeeding long after SIGTERM"
    );
    for status in &failures {
        assert!(
            transport_failed(status),
            "a call failed other than by losing the connection during shutdown: {status:?}"
        );
    }
    server.wait_exit_zero(EXIT_TIMEOUT).await;
}
