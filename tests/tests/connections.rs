//! What a peer may hold without doing anything: an HTTP/2 connection whose
//! peer stops answering pings is closed, connections are recycled after a
//! maximum age, and health `Watch` streams (public, long-lived) are bounded
//! per peer address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tessera_client::tonic::Code;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;

/// Longest a connection the server should close may stay open here.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

async fn start(env: &[(&str, &str)]) -> (TestDatabase, TestServer) {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db, ServerOptions::new().envs(env)).await;
    (db, server)
}

/// A connection that has sent the HTTP/2 preface and its settings, and
/// then says nothing more: it reads nothing and acknowledges no ping.
async fn silent_http2_peer(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let empty_settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    stream.write_all(&empty_settings).await.expect("settings");
    stream
}

/// True when the server closes `stream` within [`CLOSE_WITHIN`].
async fn closed_by_the_server(mut stream: TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let until_closed = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(CLOSE_WITHIN, until_closed)
        .await
        .is_ok()
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
    let check = || HealthCheckRequest {
        service: String::new(),
    };
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
    let watch = || HealthCheckRequest {
        service: String::new(),
    };
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
