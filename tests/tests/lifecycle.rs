//! The process around the API, end to end (SPEC §5): health, reflection,
//! signals and draining, the database going away and coming back,
//! `tessera migrate`, the default SQLite file and the log formats.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sea_orm::{ConnectionTrait, Database, TransactionTrait};
use tessera_client::pb;
use tessera_client::tonic::transport::Channel;
use tessera_client::tonic::{Code, Request, Status, Streaming};
use tessera_tests::{
    ServerOptions, TestDatabase, TestServer, assert_status, binary, run_tessera, service_secret,
};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// The name the credential service reports its health under.
const SERVICE: &str = "tessera.v1.CredentialService";
/// How long a stopped server may take to exit (the drain timeout in tests is
/// 5 s).
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn health_request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

/// An unauthenticated channel (no `authorization` header at all).
async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect")
}

/// Health of `service` at `addr`, or `None` when the server does not answer
/// within a second (not listening, not accepting, or not serving gRPC yet).
async fn health_at(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let probe = async {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .ok()?
            .connect()
            .await
            .ok()?;
        let response = HealthClient::new(channel)
            .check(health_request(service))
            .await
            .ok()?;
        ServingStatus::try_from(response.into_inner().status).ok()
    };
    tokio::time::timeout(Duration::from_secs(1), probe)
        .await
        .ok()
        .flatten()
}

/// Waits until the health of `""` at `addr` is `status`.
async fn wait_health_at(
    addr: SocketAddr,
    status: ServingStatus,
    timeout: Duration,
    logs: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while health_at(addr, "").await != Some(status) {
        assert!(
            Instant::now() < deadline,
            "health at {addr} never became {status:?}; stderr:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
async fn watch_serving(addr: SocketAddr, service: &str) -> Streaming<HealthCheckResponse> {
    let mut health = HealthClient::new(channel(addr).await);
    let mut stream = health
        .watch(health_request(service))
        .await
        .expect("watch")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("first watch answer in time")
        .expect("watch answer")
        .expect("watch stream open");
    assert_eq!(first.status(), ServingStatus::Serving, "watch {service:?}");
    stream
}

/// One reflection round trip.
async fn reflect(addr: SocketAddr, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(channel(addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection without credentials")
        .into_inner();
    stream
        .message()
        .await
        .expect("reflection response")
        .expect("one reflection response")
        .message_response
        .expect("message_response")
}

fn mint_request() -> pb::MintTicketRequest {
    pb::MintTicketRequest {
        user_id: "user-1".into(),
        provider: "github".into(),
        purpose: "ws-upgrade".into(),
        ttl_seconds: 0,
    }
}

fn verify_request(token: &str) -> pb::VerifyBearerRequest {
    pb::VerifyBearerRequest {
        token: token.to_owned(),
    }
}

/// UNAVAILABLE, or the client's own report that a call it had queued was
/// never sent because the connection closed (tonic maps hyper's `Canceled`
/// to CANCELLED): both mean the server is gone, not that it broke a call.
fn is_connection_failure(status: &Status) -> bool {
    use std::error::Error as _;
    match status.code() {
        Code::Unavailable => true,
        Code::Cancelled => status
            .source()
            .is_some_and(|source| source.is::<tessera_client::tonic::transport::Error>()),
        _ => false,
    }
}

#[track_caller]
fn assert_exit_zero(status: ExitStatus, logs: &str) {
    assert_eq!(
        status.code(),
        Some(0),
        "tessera must exit 0 after a signal, got {status:?}; stderr:\n{logs}"
    );
}

/// Removes ANSI colour sequences (`ESC [ … letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The address of a `listening` log line, JSON or human-readable.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
        let fields = value.get("fields")?;
        if fields.get("message")?.as_str()? != "listening" {
            return None;
        }
        return fields.get("addr")?.as_str()?.parse().ok();
    }
    let line = strip_ansi(line);
    if !line.contains("listening") {
        return None;
    }
    let rest = &line[line.find("addr=")? + "addr=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// A `tessera` process this file starts itself (the harness' server always
/// runs `serve --listen` with JSON logs and exposes no pid). Killed on drop.
struct Process {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    /// A command for `tessera` in `dir` with a clean environment and fast
    /// background intervals.
    fn command(dir: &Path) -> Command {
        let mut command = Command::new(binary());
        command
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TESSERA_DB_CHECK_INTERVAL_MS", "200")
            .env("TESSERA_REAPER_INTERVAL_MS", "200")
            .env("TESSERA_HEARTBEAT_INTERVAL_MS", "200")
            .env("TESSERA_DRAIN_TIMEOUT_MS", "5000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn spawn(command: &mut Command) -> Process {
        let mut child = command.spawn().expect("start tessera");
        let stdout = capture(child.stdout.take().expect("stdout"));
        let stderr = capture(child.stderr.take().expect("stderr"));
        Process {
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The address from the `listening` log line, once it appears.
    async fn addr(&mut self, timeout: Duration) -> SocketAddr {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(addr) = self.stderr().lines().find_map(listening_addr) {
                return addr;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "tessera exited ({status:?}) before listening; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `listening` log line; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, signal).expect("signal tessera");
    }

    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the capture threads read the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tessera did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buffer = Arc::new(Mutex::new(String::new()));
    let sink = buffer.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut sink) = sink.lock() {
                sink.push_str(&line);
                sink.push('\n');
            }
        }
    });
    buffer
}

// ---------------------------------------------------------------------------
// Health and reflection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_credential_service() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db, ServerOptions::new()).await;

    assert_eq!(server.health_status("").await, Some(ServingStatus::Serving));
    assert_eq!(
        server.health_status(SERVICE).await,
        Some(ServingStatus::Serving)
    );

    let mut health = server.health().await;
    for unknown in [
        "tessera.v1.Unknown",
        "tessera.v1.credentialservice",
        "CredentialService",
    ] {
        let status = health
            .check(health_request(unknown))
            .await
            .expect_err("an unknown service has no health");
        assert_eq!(status.code(), Code::NotFound, "{unknown:?}: {status:?}");
    }

    // Health is public: a bogus bearer neither helps nor hurts.
    let mut request = Request::new(health_request(""));
    request.metadata_mut().insert(
        "authorization",
        "Bearer not-a-credential".parse().expect("metadata"),
    );
    let response = health
        .check(request)
        .await
        .expect("health with a bad bearer");
    assert_eq!(response.into_inner().status(), ServingStatus::Serving);
}

#[tokio::test]
async fn reflection_lists_the_services_without_credentials() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db, ServerOptions::new()).await;

    let MessageResponse::ListServicesResponse(list) =
        reflect(server.addr, MessageRequest::ListServices(String::new())).await
    else {
        panic!("ListServices answered with something else");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [SERVICE, "grpc.health.v1.Health"] {
        assert!(names.contains(&expected), "{expected} missing in {names:?}");
    }

    // grpcurl needs the descriptors too, not only the names.
    let response = reflect(
        server.addr,
        MessageRequest::FileContainingSymbol(SERVICE.to_owned()),
    )
    .await;
    let MessageResponse::FileDescriptorResponse(files) = response else {
        panic!("FileContainingSymbol({SERVICE}) answered {response:?}");
    };
    let all: Vec<u8> = files.file_descriptor_proto.concat();
    let text = String::from_utf8_lossy(&all);
    for needle in ["CredentialService", "VerifyBearer", "MintTicket"] {
        assert!(text.contains(needle), "descriptor lacks {needle}");
    }

    // And the credential service itself still wants credentials.
    let mut anonymous = server.client(None).await;
    let status = anonymous
        .verify_bearer(verify_request("x"))
        .await
        .expect_err("anonymous VerifyBearer");
    assert_status(&status, Code::Unauthenticated, None);
}

// ---------------------------------------------------------------------------
// Signals and draining
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sigterm_reports_not_serving_to_watchers_then_exits_zero() {
    let db = TestDatabase::sqlite();
    let mut server = TestServer::start(&db, ServerOptions::new()).await;
    let mut server_watch = watch_serving(server.addr, "").await;
    let mut service_watch = watch_serving(server.addr, SERVICE).await;

    server.terminate();
    expect_not_serving(&mut server_watch, "watch \"\"").await;
    expect_not_serving(&mut service_watch, "watch CredentialService").await;
    // The watchers hang up, as a real health checker would once told.
    drop(server_watch);
    drop(service_watch);

    let status = server.wait_exit(EXIT_TIMEOUT).await;
    assert_exit_zero(status, &server.stderr());
}

#[tokio::test]
async fn sigint_reports_not_serving_then_exits_zero() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}", dir.path().join("sigint.db").display());
    let mut process = Process::spawn(
        Process::command(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", &url)
            .env("TESSERA_LOG_FORMAT", "json"),
    );
    let addr = process.addr(Duration::from_secs(30)).await;
    wait_health_at(
        addr,
        ServingStatus::Serving,
        Duration::from_secs(30),
        || process.stderr(),
    )
    .await;
    let mut watch = watch_serving(addr, "").await;

    process.signal(Signal::SIGINT);
    expect_not_serving(&mut watch, "watch after SIGINT").await;
    drop(watch);

    let status = process.wait_exit(EXIT_TIMEOUT).await;
    assert_exit_zero(status, &process.stderr());
}

/// A call in flight when SIGTERM arrives completes: the server stops taking
/// new work but does not cut what it already accepted. The call is made slow
/// by holding SQLite's write lock, which MintTicket must wait for.
#[tokio::test]
async fn sigterm_drains_an_in_flight_call() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let mut server =
        TestServer::start(&db, ServerOptions::new().service("SCHEDULER", &secret)).await;
    let mut client = server.client(Some(&secret)).await;
    client
        .mint_ticket(mint_request())
        .await
        .expect("MintTicket works before the test");

    let conn = db.connect().await;
    let lock = conn.begin().await.expect("begin");
    lock.execute_unprepared("CREATE TABLE drain_lock (x INTEGER)")
        .await
        .expect("take SQLite's write lock");

    let started = Instant::now();
    let call = tokio::spawn(async move { client.mint_ticket(mint_request()).await });
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
    lock.rollback().await.expect("release the write lock");

    let result = tokio::time::timeout(EXIT_TIMEOUT, call)
        .await
        .expect("the in-flight call finishes")
        .expect("task");
    let ticket = result
        .unwrap_or_else(|status| {
            panic!(
                "the in-flight call failed during the drain: {status:?}; stderr:\n{}",
                server.stderr()
            )
        })
        .into_inner()
        .ticket;
    assert!(ticket.starts_with("tsr_"), "ticket {ticket:.8}…");
    assert!(started.elapsed() >= Duration::from_millis(2000));

    let status = server.wait_exit(EXIT_TIMEOUT).await;
    assert_exit_zero(status, &server.stderr());
}

/// The drain is bounded: a call still running when `TESSERA_DRAIN_TIMEOUT_MS`
/// runs out is cut, and the process exits 0 soon after, even when that call
/// is stuck waiting for the database (here: SQLite's write lock, held by the
/// test for longer than the drain timeout).
#[tokio::test]
async fn drain_timeout_bounds_shutdown_with_a_call_stuck_on_the_database() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let options = ServerOptions::new()
        .service("SCHEDULER", &secret)
        .env("TESSERA_DRAIN_TIMEOUT_MS", "1000");
    let mut server = TestServer::start(&db, options).await;
    let mut client = server.client(Some(&secret)).await;

    let conn = db.connect().await;
    let lock = conn.begin().await.expect("begin");
    lock.execute_unprepared("CREATE TABLE drain_lock (x INTEGER)")
        .await
        .expect("take SQLite's write lock");
    let call = tokio::spawn(async move { client.mint_ticket(mint_request()).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!call.is_finished(), "MintTicket did not wait for the lock");

    let signalled = Instant::now();
    server.terminate();
    // 1 s of drain, plus generous slack; far less than SQLite's busy wait.
    let status = server.wait_exit(Duration::from_secs(4)).await;
    let took = signalled.elapsed();
    assert_exit_zero(status, &server.stderr());
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

/// Calls racing SIGTERM, from several connections at once, either succeed
/// or fail as UNAVAILABLE (the server is gone): none hangs, none gets a
/// broken or internal error, and the exit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_sigterm_succeed_or_fail_cleanly() {
    const WORKERS: usize = 4;
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let mut server =
        TestServer::start(&db, ServerOptions::new().service("SCHEDULER", &secret)).await;
    let succeeded = Arc::new(AtomicUsize::new(0));
    let after_signal = Arc::new(AtomicUsize::new(0));
    let signalled = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(15);

    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let mut client = server.client(Some(&secret)).await;
        let (secret, succeeded) = (secret.clone(), succeeded.clone());
        let (after_signal, signalled) = (after_signal.clone(), signalled.clone());
        workers.push(tokio::spawn(async move {
            let mut failures: Vec<Status> = Vec::new();
            for i in 0..10_000 {
                if failures.len() >= 3 || Instant::now() > deadline {
                    break;
                }
                let was_signalled = signalled.load(Ordering::SeqCst);
                // Alternate a call without and one with database writes.
                let result = if (worker + i) % 2 == 0 {
                    let call = client.verify_bearer(verify_request(&secret));
                    match tokio::time::timeout(Duration::from_secs(8), call).await {
                        Err(_) => panic!("VerifyBearer hung during shutdown"),
                        Ok(result) => result.map(|r| {
                            let principal = r.into_inner().principal.expect("principal");
                            assert_eq!(principal.email, "scheduler@system.local");
                        }),
                    }
                } else {
                    let call = client.mint_ticket(mint_request());
                    match tokio::time::timeout(Duration::from_secs(8), call).await {
                        Err(_) => panic!("MintTicket hung during shutdown"),
                        Ok(result) => result.map(|r| {
                            assert!(r.into_inner().ticket.starts_with("tsr_"));
                        }),
                    }
                };
                match result {
                    Ok(()) => {
                        succeeded.fetch_add(1, Ordering::SeqCst);
                        if was_signalled {
                            after_signal.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(status) => failures.push(status),
                }
            }
            failures
        }));
    }

    while succeeded.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < deadline, "the workers never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signalled.store(true, Ordering::SeqCst);
    server.terminate();

    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.expect("worker"));
    }
    eprintln!(
        "{} calls succeeded, {} of them started after SIGTERM; failures: {:?}",
        succeeded.load(Ordering::SeqCst),
        after_signal.load(Ordering::SeqCst),
        failures.iter().map(Status::code).collect::<Vec<_>>()
    );
    assert_eq!(
        failures.len(),
        3 * WORKERS,
        "calls kept succeeding long after SIGTERM"
    );
    for status in &failures {
        assert!(
            is_connection_failure(status),
            "a call failed other than by losing the connection during shutdown: {status:?}"
        );
    }

    let status = server.wait_exit(EXIT_TIMEOUT).await;
    assert_exit_zero(status, &server.stderr());
}

// ---------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------

/// PostgreSQL stops accepting connections and its sessions are killed:
/// health turns NOT_SERVING, calls that need the database are UNAVAILABLE,
/// calls that do not still work, and everything recovers without a restart.
#[tokio::test]
async fn postgres_outage_reports_not_serving_and_recovers() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let name = db.name().expect("name").to_owned();
    let secret = service_secret("scheduler");
    let server = TestServer::start(&db, ServerOptions::new().service("SCHEDULER", &secret)).await;
    let mut client = server.client(Some(&secret)).await;
    client
        .mint_ticket(mint_request())
        .await
        .expect("MintTicket before the outage");

    db.admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await;
    db.admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;

    server
        .wait_for_health(ServingStatus::NotServing, Duration::from_secs(10))
        .await;
    assert_eq!(
        server.health_status(SERVICE).await,
        Some(ServingStatus::NotServing)
    );

    // The seeded service user is cached: verifying it needs no database.
    let principal = client
        .verify_bearer(verify_request(&secret))
        .await
        .expect("VerifyBearer of a seeded service secret during the outage")
        .into_inner()
        .principal
        .expect("principal");
    assert_eq!(principal.email, "scheduler@system.local");

    let status = client
        .mint_ticket(mint_request())
        .await
        .expect_err("MintTicket without a database");
    assert_status(&status, Code::Unavailable, None);
    let status = client
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await
        .expect_err("the first internal credential needs the database");
    assert_status(&status, Code::Unavailable, None);

    // Still up, still reporting.
    assert_eq!(
        server.health_status("").await,
        Some(ServingStatus::NotServing)
    );

    db.admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await;
    server
        .wait_for_health(ServingStatus::Serving, Duration::from_secs(10))
        .await;
    assert_eq!(
        server.health_status(SERVICE).await,
        Some(ServingStatus::Serving)
    );

    let ticket = client
        .mint_ticket(mint_request())
        .await
        .expect("MintTicket after the outage")
        .into_inner()
        .ticket;
    let identity = client
        .consume_ticket(pb::ConsumeTicketRequest {
            ticket,
            purpose: "ws-upgrade".into(),
        })
        .await
        .expect("ConsumeTicket after the outage")
        .into_inner()
        .identity
        .expect("identity");
    assert_eq!(identity.user_id, "user-1");
    client
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await
        .expect("GetInternalCredential after the outage");
}

/// A server whose database is gone still stops cleanly: withdrawing its
/// internal credential fails, but that is no reason to hang or exit non-zero.
#[tokio::test]
async fn sigterm_while_postgres_is_down_still_exits_zero() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let name = db.name().expect("name").to_owned();
    let secret = service_secret("scheduler");
    let mut server =
        TestServer::start(&db, ServerOptions::new().service("SCHEDULER", &secret)).await;
    let mut client = server.client(Some(&secret)).await;
    client
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await
        .expect("an internal credential, to be withdrawn at shutdown");
    drop(client);

    db.admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await;
    db.admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    server
        .wait_for_health(ServingStatus::NotServing, Duration::from_secs(10))
        .await;

    let started = Instant::now();
    server.terminate();
    let status = server.wait_exit(EXIT_TIMEOUT).await;
    db.admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await;
    assert_exit_zero(status, &server.stderr());
    eprintln!("stopped in {:?} without a database", started.elapsed());
}

/// Health is not SERVING before migrations are applied: here they wait for
/// a write lock another connection holds on the SQLite file.
#[tokio::test]
async fn not_serving_until_migrations_are_applied() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("locked.db");
    let url = format!("sqlite:{}", path.display());
    let conn = Database::connect(format!("{url}?mode=rwc"))
        .await
        .expect("create the SQLite file");
    conn.execute_unprepared("PRAGMA journal_mode=WAL")
        .await
        .expect("WAL");
    let lock = conn.begin().await.expect("begin");
    lock.execute_unprepared("CREATE TABLE startup_lock (x INTEGER)")
        .await
        .expect("take SQLite's write lock");

    let mut process = Process::spawn(
        Process::command(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", &url)
            .env("TESSERA_LOG_FORMAT", "json"),
    );
    let held_until = Instant::now() + Duration::from_secs(2);
    let mut probes = 0;
    while Instant::now() < held_until {
        if let Some(addr) = process.stderr().lines().find_map(listening_addr) {
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
            process.child.try_wait().expect("try_wait").is_none(),
            "tessera gave up while the database was busy; stderr:\n{}",
            process.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lock.rollback().await.expect("release the write lock");

    let addr = process.addr(Duration::from_secs(15)).await;
    wait_health_at(
        addr,
        ServingStatus::Serving,
        Duration::from_secs(15),
        || process.stderr(),
    )
    .await;
    eprintln!("{probes} probes while the database was locked");
    process.signal(Signal::SIGTERM);
    let status = process.wait_exit(EXIT_TIMEOUT).await;
    assert_exit_zero(status, &process.stderr());
}

#[tokio::test]
async fn migrate_creates_the_sqlite_file_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("fresh.db");
    let url = format!("sqlite:{}", path.display());
    assert!(!path.exists());

    let mut counts = Vec::new();
    for run in 1..=2 {
        let out = run_tessera(&["migrate"], &[("DATABASE_URL", &url)]);
        assert!(
            out.status.success(),
            "migrate run {run} failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(path.exists(), "migrate did not create {}", path.display());
        let conn = Database::connect(url.as_str()).await.expect("open");
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                "SELECT COUNT(*) FROM seaql_migrations",
            ))
            .await
            .expect("seaql_migrations exists")
            .expect("a row");
        let count: i64 = row.try_get_by_index(0).expect("count");
        conn.close().await.expect("close");
        counts.push(count);
    }
    assert!(counts[0] > 0, "no migration recorded");
    assert_eq!(counts[0], counts[1], "second run applied migrations again");
}

#[tokio::test]
async fn migrate_works_on_postgres_and_fails_clearly_when_unreachable() {
    if let Some(db) = TestDatabase::postgres().await {
        for run in 1..=2 {
            let out = run_tessera(&["migrate"], &[("DATABASE_URL", db.url())]);
            assert!(
                out.status.success(),
                "migrate run {run} on PostgreSQL failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    let started = Instant::now();
    let out = run_tessera(
        &["migrate"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nope")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "migrate succeeded without a database"
    );
    assert_eq!(out.status.code(), Some(1), "exit status {:?}", out.status);
    assert!(
        stderr.contains("tessera:") && stderr.to_lowercase().contains("database"),
        "no clear message on stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "migrate panicked:\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?} to give up",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Defaults and logging
// ---------------------------------------------------------------------------

/// `tessera` without arguments serves, on `TESSERA_LISTEN`, from
/// `tessera.db` in the working directory, created on first run.
#[tokio::test]
async fn no_arguments_serves_from_a_default_sqlite_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("tessera.db");
    assert!(!file.exists());
    let mut process = Process::spawn(
        Process::command(dir.path())
            .env("TESSERA_LISTEN", "127.0.0.1:0")
            .env("TESSERA_LOG_FORMAT", "json"),
    );
    let addr = process.addr(Duration::from_secs(30)).await;
    assert!(addr.ip().is_loopback(), "listening on {addr}");
    assert_ne!(addr.port(), 0);
    wait_health_at(
        addr,
        ServingStatus::Serving,
        Duration::from_secs(30),
        || process.stderr(),
    )
    .await;
    assert!(
        file.exists(),
        "tessera.db was not created in the working directory"
    );
    assert_eq!(health_at(addr, SERVICE).await, Some(ServingStatus::Serving));

    process.signal(Signal::SIGTERM);
    let status = process.wait_exit(EXIT_TIMEOUT).await;
    assert_exit_zero(status, &process.stderr());

    // Migrations ran against that file.
    let conn = Database::connect(format!("sqlite:{}", file.display()))
        .await
        .expect("open tessera.db");
    conn.execute_unprepared("SELECT COUNT(*) FROM seaql_migrations")
        .await
        .expect("migrations were applied to tessera.db");
}

async fn run_and_collect_logs(format: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}", dir.path().join("logs.db").display());
    let secret = service_secret("logger");
    let mut process = Process::spawn(
        Process::command(dir.path())
            .arg("serve")
            .env("TESSERA_LISTEN", "127.0.0.1:0")
            .env("DATABASE_URL", &url)
            .env("TESSERA_LOG_FORMAT", format)
            .env("TESSERA_SERVICE_TOKEN_LOGGER", &secret)
            .env("TESSERA_SERVICE_TOKEN_SHORT", "too-short"),
    );
    let addr = process.addr(Duration::from_secs(30)).await;
    wait_health_at(
        addr,
        ServingStatus::Serving,
        Duration::from_secs(30),
        || process.stderr(),
    )
    .await;
    // Some traffic, including a failure that gets logged.
    let mut client = tessera_client::Client::builder(format!("http://{addr}"))
        .bearer(tessera_client::Secret::new(&secret))
        .connect()
        .await
        .expect("connect");
    let _ = client.verify_bearer(verify_request("garbage")).await;
    let _ = client.verify_bearer(verify_request(&secret)).await;
    drop(client);

    process.signal(Signal::SIGTERM);
    let status = process.wait_exit(EXIT_TIMEOUT).await;
    assert_exit_zero(status, &process.stderr());
    let (stdout, stderr) = (process.stdout(), process.stderr());
    for stream in [&stdout, &stderr] {
        assert!(
            !stream.contains(&secret),
            "a service secret was written out"
        );
    }
    assert!(
        !stdout.contains("listening"),
        "logs belong on stderr, not stdout:\n{stdout}"
    );
    (stdout, stderr)
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_on_stderr() {
    let (_, stderr) = run_and_collect_logs("json").await;
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "too few log lines:\n{stderr}");
    let mut messages = Vec::new();
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a JSON log line ({err}): {line}"));
        assert!(value.is_object(), "not a JSON object: {line}");
        assert!(value.get("level").is_some(), "no level: {line}");
        assert!(value.get("timestamp").is_some(), "no timestamp: {line}");
        if let Some(message) = value.pointer("/fields/message").and_then(|m| m.as_str()) {
            messages.push(message.to_owned());
        }
    }
    assert!(messages.iter().any(|m| m == "listening"), "{messages:?}");
    assert!(
        stderr.contains("TESSERA_SERVICE_TOKEN_SHORT"),
        "the short-secret warning is logged:\n{stderr}"
    );
}

#[tokio::test]
async fn pretty_logs_are_human_lines_on_stderr() {
    let (_, stderr) = run_and_collect_logs("pretty").await;
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "too few log lines:\n{stderr}");
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_err(),
            "a JSON line in pretty logs: {line}"
        );
    }
    let plain = strip_ansi(&stderr);
    assert!(
        plain
            .lines()
            .any(|l| l.contains("INFO") && l.contains("listening")),
        "no human-readable `listening` line:\n{plain}"
    );
    assert!(
        plain.contains("TESSERA_SERVICE_TOKEN_SHORT"),
        "the short-secret warning is logged:\n{plain}"
    );
}
