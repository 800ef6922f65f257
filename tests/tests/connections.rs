//! What a peer may hold without doing anything: a connection that does not
//! start HTTP/2 in time is closed, an HTTP/2 connection whose peer stops
//! answering pings is closed, connections are recycled after a maximum age,
//! health `Watch` streams (public, long-lived) are bounded per peer address,
//! and running out of file descriptors makes the server wait, not spin.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tessera_client::tonic::Code;
use tessera_client::tonic::transport::{Channel, Endpoint};
use tessera_tests::grpc::verify_bearer;
use tessera_tests::peers::{closed_within, counting_channel, cpu_seconds};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status, scheduler_secret};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Longest a connection the server should close may stay open here.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// How long after a 300 ms preface timeout a connection may stay open.
const PREFACE_CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// The server-wide health request.
fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

async fn start(env: &[(&str, &str)]) -> (TestDatabase, TestServer) {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db, ServerOptions::new().envs(env)).await;
    (db, server)
}

/// The magic that opens the HTTP/2 client connection preface (a SETTINGS
/// frame completes it).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection that has sent the HTTP/2 preface and its settings, and
/// then says nothing more: it reads nothing and acknowledges no ping.
async fn silent_http2_peer(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let empty_settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    stream.write_all(PREFACE).await.expect("preface");
    stream.write_all(&empty_settings).await.expect("settings");
    stream
}

/// True when the server closes `stream` within [`CLOSE_WITHIN`].
async fn closed_by_the_server(stream: TcpStream) -> bool {
    closed_within(stream, CLOSE_WITHIN).await
}

/// A connection must deliver the HTTP/2 client preface within the preface
/// timeout; silence, part of the preface, or the preface a byte at a time
/// over longer than that is not enough to stay.
#[tokio::test]
async fn a_connection_that_does_not_start_http2_in_time_is_closed() {
    let (_db, server) = start(&[("TESSERA_PREFACE_TIMEOUT_MS", "300")]).await;
    let silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut partial = TcpStream::connect(server.addr).await.expect("connect");
    partial
        .write_all(&PREFACE[..16])
        .await
        .expect("half a preface");
    // The magic alone is not the preface: a SETTINGS frame must follow it.
    let mut magic_only = TcpStream::connect(server.addr).await.expect("connect");
    magic_only.write_all(PREFACE).await.expect("the magic");
    // Nor is a SETTINGS frame's header without the payload it declares.
    let mut header_only = TcpStream::connect(server.addr).await.expect("connect");
    let settings_of_six_bytes = [0, 0, 6, 4, 0, 0, 0, 0, 0];
    header_only.write_all(PREFACE).await.expect("the magic");
    header_only
        .write_all(&settings_of_six_bytes)
        .await
        .expect("a SETTINGS header");
    let (trickled, mut trickle) = TcpStream::connect(server.addr)
        .await
        .expect("connect")
        .into_split();
    let trickling = tokio::spawn(async move {
        for byte in PREFACE {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if trickle.write_all(&[*byte]).await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    assert!(
        closed_within(silent, PREFACE_CLOSE_WITHIN).await,
        "a silent connection stayed"
    );
    assert!(
        closed_within(partial, PREFACE_CLOSE_WITHIN).await,
        "a connection that sent half the preface stayed"
    );
    assert!(
        closed_within(magic_only, PREFACE_CLOSE_WITHIN).await,
        "a connection that sent the magic and no SETTINGS stayed"
    );
    assert!(
        closed_within(header_only, PREFACE_CLOSE_WITHIN).await,
        "a connection that sent a SETTINGS header without its payload stayed"
    );
    assert!(
        closed_within(trickled, PREFACE_CLOSE_WITHIN).await,
        "a connection that trickled its preface stayed"
    );
    trickling.abort();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "closed too soon"
    );
}

/// The preface timeout is for starting HTTP/2 only: a client connected for
/// many times that long, idle between calls, keeps its one connection, and
/// a `Watch` stream that receives nothing all that time is still open.
#[tokio::test]
async fn idle_http2_connections_and_quiet_streams_outlive_the_preface_timeout() {
    let (_db, mut server) = start(&[
        ("TESSERA_PREFACE_TIMEOUT_MS", "300"),
        ("TESSERA_HTTP2_KEEPALIVE_INTERVAL_MS", "100"),
        ("TESSERA_HTTP2_KEEPALIVE_TIMEOUT_MS", "1000"),
    ])
    .await;
    let (channel, connects) = counting_channel(server.addr).await;
    let mut idle = HealthClient::new(channel);
    idle.check(check()).await.expect("first check");
    let mut watcher = server.health().await;
    let mut watch = watcher.watch(check()).await.expect("watch").into_inner();
    let first = watch
        .message()
        .await
        .expect("first status")
        .expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    idle.check(check()).await.expect("a later check");
    assert_eq!(
        connects.load(Ordering::SeqCst),
        1,
        "the idle connection was closed"
    );
    // Shutting down reports NOT_SERVING to the stream, which is still there.
    server.terminate();
    let next = tokio::time::timeout(CLOSE_WITHIN, watch.message())
        .await
        .expect("a status within the timeout")
        .expect("the stream survived")
        .expect("a status");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_disconnected() {
    let (_db, server) = start(&[
        ("TESSERA_HTTP2_KEEPALIVE_INTERVAL_MS", "200"),
        ("TESSERA_HTTP2_KEEPALIVE_TIMEOUT_MS", "200"),
    ])
    .await;
    let silent = silent_http2_peer(server.addr).await;
    assert!(closed_by_the_server(silent).await, "the silent peer stayed");
    // A real client answers the pings and keeps its connection.
    let mut health = server.health().await;
    health.check(check()).await.expect("first check");
    tokio::time::sleep(Duration::from_secs(1)).await;
    health.check(check()).await.expect("same connection, later");
}

/// Past its age a connection is asked to go away, and closed at the latest
/// when the grace for its calls (the request timeout) is over, even when
/// its peer ignores the request.
#[tokio::test]
async fn connections_are_closed_after_their_maximum_age() {
    let (_db, server) = start(&[
        ("TESSERA_MAX_CONNECTION_AGE_MS", "300"),
        ("TESSERA_REQUEST_TIMEOUT_MS", "500"),
    ])
    .await;
    let idle = silent_http2_peer(server.addr).await;
    assert!(
        closed_by_the_server(idle).await,
        "the connection outlived its age"
    );
}

/// Anyone may watch health, but one address holds at most the configured
/// number of `Watch` streams at once; a stream that ends frees its place.
#[tokio::test]
async fn health_watch_streams_are_bounded_per_peer() {
    let (_db, server) = start(&[("TESSERA_MAX_WATCH_STREAMS_PER_PEER", "2")]).await;
    let watch = check;
    let mut watching = Vec::new();
    for _ in 0..2 {
        let mut health = server.health().await;
        let mut stream = health.watch(watch()).await.expect("watch").into_inner();
        stream
            .message()
            .await
            .expect("first status")
            .expect("a status");
        watching.push((health, stream));
    }
    let mut health = server.health().await;
    let status = health.watch(watch()).await.expect_err("a third stream");
    assert_status(&status, Code::ResourceExhausted, None);
    health.check(watch()).await.expect("Check is not a stream");

    drop(watching.pop());
    let deadline = Instant::now() + CLOSE_WITHIN;
    loop {
        match health.watch(watch()).await {
            Ok(_) => break,
            Err(status) if Instant::now() < deadline => {
                assert_status(&status, Code::ResourceExhausted, None);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("the ended stream's place was not freed: {status:?}"),
        }
    }
}

/// Out of file descriptors, the server can accept nothing: it must wait
/// and retry (saying so in its log), not retry at once in a loop that
/// burns a core and starves the connections it already has. Once the
/// descriptors are back, it serves again.
#[tokio::test]
async fn running_out_of_file_descriptors_does_not_spin() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::scheduler()
        .open_file_limit(64)
        .env("TESSERA_PREFACE_TIMEOUT_MS", "60000");
    let server = TestServer::start(&db, options).await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let window = Duration::from_secs(2);
    let before = cpu_seconds(server.pid());
    tokio::time::sleep(window).await;
    let share = (cpu_seconds(server.pid()) - before) / window.as_secs_f64();
    println!(
        "server CPU with its descriptors exhausted: {:.0}%",
        share * 100.0
    );
    assert!(
        share < 0.3,
        "the server used {:.0}% of a core",
        share * 100.0
    );
    let warned =
        |line: &str| line.contains("\"WARN\"") && line.contains("accepting connections failed");
    assert!(
        server.wait_for_log(warned, CLOSE_WITHIN).await,
        "no warning about failing accepts:\n{}",
        server.stderr()
    );

    drop(idle);
    let call = async {
        let mut client = server.scheduler().await;
        verify_bearer(&mut client, &scheduler_secret()).await
    };
    tokio::time::timeout(CLOSE_WITHIN, call)
        .await
        .expect("an answer once descriptors are free")
        .expect("VerifyBearer");
}

/// Beyond `TESSERA_MAX_CONNECTIONS`, a connection is accepted and closed at
/// once (its client fails fast); when one closes, its place is free again.
#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let (_db, server) = start(&[
        ("TESSERA_MAX_CONNECTIONS", "2"),
        ("TESSERA_PREFACE_TIMEOUT_MS", "60000"),
    ])
    .await;
    // The harness's own probes may still hold a place for a moment.
    let mut held = vec![served_client(&server).await, served_client(&server).await];
    let third = TcpStream::connect(server.addr).await.expect("connect");
    assert!(
        closed_within(third, Duration::from_secs(1)).await,
        "a third connection was kept"
    );
    let warned =
        |line: &str| line.contains("\"WARN\"") && line.contains("connection limit reached");
    assert!(
        server.wait_for_log(warned, CLOSE_WITHIN).await,
        "no warning about the limit"
    );
    held.pop();
    served_client(&server).await;
}

/// A health client that has been served, retried until the server has a
/// place for it (within [`CLOSE_WITHIN`]).
async fn served_client(server: &TestServer) -> HealthClient<Channel> {
    let deadline = Instant::now() + CLOSE_WITHIN;
    let endpoint = Endpoint::from_shared(server.endpoint()).expect("endpoint");
    loop {
        if let Ok(channel) = endpoint.connect().await {
            let mut health = HealthClient::new(channel);
            if health.check(check()).await.is_ok() {
                return health;
            }
        }
        assert!(Instant::now() < deadline, "no place for a new connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
