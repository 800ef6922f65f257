//! One address cannot hold all of the server's connections: past
//! `TESSERA_MAX_CONNECTIONS_PER_PEER`, its new connections are closed at
//! once, while other addresses are still served and a place it gives back
//! is its again. The test's peers use addresses of their own in 127.0.0.0/8
//! (the harness's probes come from 127.0.0.1).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tessera_client::tonic::transport::Endpoint;
use tessera_tests::peers::closed_within;
use tessera_tests::{ServerOptions, TestDatabase, TestServer};
use tokio::net::{TcpSocket, TcpStream};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const PER_PEER: usize = 3;

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A plain TCP connection from `from` that says nothing.
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    socket.connect(to).await.expect("connect")
}

/// True once a health check from `from` is answered (retried for 5 s, as a
/// place given back is seen when the server reads its connection's end).
async fn served_from(server: &TestServer, from: IpAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let endpoint = Endpoint::from_shared(server.endpoint())
        .expect("endpoint")
        .local_address(Some(from));
    while Instant::now() < deadline {
        if let Ok(channel) = endpoint.connect().await {
            let check = HealthCheckRequest::default();
            if HealthClient::new(channel).check(check).await.is_ok() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn connections_beyond_an_addresses_share_are_closed_at_once() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .env("TESSERA_MAX_CONNECTIONS_PER_PEER", &PER_PEER.to_string())
        .env("TESSERA_PREFACE_TIMEOUT_MS", "60000");
    let server = TestServer::start(&db, options).await;
    let (greedy, other) = (loopback(3), loopback(4));

    let mut held = Vec::new();
    for _ in 0..PER_PEER {
        held.push(connect_from(greedy, server.addr).await);
    }
    let one_more = connect_from(greedy, server.addr).await;
    assert!(
        closed_within(one_more, Duration::from_secs(1)).await,
        "a connection beyond the address's share was kept"
    );
    let warned = |line: &str| {
        line.contains("\"WARN\"") && line.contains("connection limit per address reached")
    };
    assert!(
        server.wait_for_log(warned, Duration::from_secs(5)).await,
        "no warning about the limit"
    );
    assert!(served_from(&server, other).await, "another address refused");

    drop(held.pop());
    assert!(
        served_from(&server, greedy).await,
        "a place given back was not reused"
    );
}

/// A few addresses that each stay within their share still cannot take
/// every connection: the last tenth of `TESSERA_MAX_CONNECTIONS` goes only
/// to addresses holding few, so other addresses are still served.
#[tokio::test]
async fn the_last_connections_are_kept_for_addresses_that_hold_few() {
    const MAX: usize = 40;
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .env("TESSERA_MAX_CONNECTIONS", &MAX.to_string())
        .env("TESSERA_MAX_CONNECTIONS_PER_PEER", &MAX.to_string())
        .env("TESSERA_PREFACE_TIMEOUT_MS", "60000");
    let server = TestServer::start(&db, options).await;
    let greedy = loopback(5);

    let mut streams = Vec::new();
    for _ in 0..MAX {
        streams.push(connect_from(greedy, server.addr).await);
    }
    // Each check keeps its stream open, so the kept ones stay counted.
    let mut checks = tokio::task::JoinSet::new();
    for mut stream in streams {
        checks.spawn(async move {
            let closed = closed_within(&mut stream, Duration::from_millis(500)).await;
            (closed, stream)
        });
    }
    let closed: Vec<_> = checks.join_all().await;
    let kept = closed.iter().filter(|(closed, _)| !closed).count();
    assert!(
        kept <= MAX - MAX / 10,
        "one address kept {kept} of {MAX} connections"
    );
    for other in [loopback(6), loopback(7)] {
        assert!(served_from(&server, other).await, "{other} refused");
    }
}
