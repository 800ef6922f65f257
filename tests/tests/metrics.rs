//! The Prometheus endpoint, scraped while the counters move.

use std::net::SocketAddr;
use std::time::Duration;

use tessera_client::tonic::Code;
use tessera_tests::grpc::{consume_ticket, mint_ticket, verify_as};
use tessera_tests::metrics::{metrics_addr, sample, scrape, total};
use tessera_tests::raw::{RawCall, frame};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, service_secret};
use tonic_health::pb::HealthCheckRequest;

/// A server on SQLite with the metrics endpoint on; its service secret and
/// metrics address.
async fn start_with_metrics() -> (TestDatabase, TestServer, String, SocketAddr) {
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let options = ServerOptions::new()
        .service("SCHEDULER", &secret)
        .env("TESSERA_METRICS_LISTEN", "127.0.0.1:0");
    let server = TestServer::start(&db, options).await;
    let addr = metrics_addr(&server).await;
    (db, server, secret, addr)
}

#[tokio::test]
async fn counters_move_with_traffic() {
    let (_db, server, secret, addr) = start_with_metrics().await;
    let before = scrape(addr);
    assert!(before.contains("tessera_build_info{version=\""), "{before}");

    let mut client = server.client(Some(&secret)).await;
    for _ in 0..3 {
        let ticket = mint_ticket(&mut client, "u", "", 0).await.expect("mint");
        for _ in 0..2 {
            let _ = consume_ticket(&mut client, &ticket, "").await;
        }
    }
    let _ = verify_as(&server, "not-a-secret", "x").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let after = scrape(addr);
    let moved = |series: &str, by: f64| {
        let delta = sample(&after, series) - sample(&before, series);
        assert_eq!(delta, by, "{series} moved by {delta}:\n{after}");
    };
    moved("tessera_tickets_total{event=\"minted\"}", 3.0);
    moved("tessera_tickets_total{event=\"consumed\"}", 3.0);
    moved("tessera_tickets_total{event=\"replayed\"}", 3.0);
    moved(
        "tessera_grpc_requests_total{method=\"MintTicket\",code=\"Ok\"}",
        3.0,
    );
    moved(
        "tessera_grpc_requests_total{method=\"ConsumeTicket\",code=\"Unauthenticated\"}",
        3.0,
    );
    moved(
        "tessera_grpc_requests_total{method=\"VerifyBearer\",code=\"Unauthenticated\"}",
        1.0,
    );
    moved(
        "tessera_auth_failures_total{reason=\"malformed bearer\"}",
        1.0,
    );
    assert!(
        after.contains("tessera_grpc_request_duration_seconds_bucket{method=\"MintTicket\""),
        "{after}"
    );
    assert!(
        after.contains("tessera_db_pool_connections{state=\"open\"}"),
        "{after}"
    );
    assert!(!after.contains(&secret), "no secret in metrics");
}

/// Concurrent mints share commits: the group-commit histogram must show
/// batches of more than one write. Sequential calls (above) never would.
#[tokio::test]
async fn concurrent_writes_are_committed_together() {
    const CALLS: usize = 128;
    let (_db, server, secret, addr) = start_with_metrics().await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(server.client(Some(&secret)).await);
    }
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let mut client = clients[i % clients.len()].clone();
            tokio::spawn(async move { mint_ticket(&mut client, &format!("u{i}"), "", 0).await })
        })
        .collect();
    for call in calls {
        call.await.expect("join").expect("mint");
    }

    let after = scrape(addr);
    let batches = sample(&after, "tessera_db_write_batch_size_count");
    let writes = sample(&after, "tessera_db_write_batch_size_sum");
    let alone = sample(&after, "tessera_db_write_batch_size_bucket{le=\"1\"}");
    // Every mint is one write: its ticket with its audit entry.
    assert!(writes >= CALLS as f64, "{writes} writes:\n{after}");
    assert!(alone < batches, "every batch held one write:\n{after}");
}

/// Only the methods Tessera serves get their own `method` label: calls of
/// made-up methods, under the public health service and under the
/// credential service (refused before any method runs), are all counted as
/// `other`, so callers cannot grow the label set or the scrape.
#[tokio::test]
async fn made_up_methods_share_one_label() {
    const NAMES: usize = 50;
    let (_db, server, _secret, addr) = start_with_metrics().await;
    let before = scrape(addr);
    let channel = tessera_tests::raw::channel(&server.endpoint()).await;
    let names: Vec<String> = (0..NAMES).map(|i| format!("MadeUp{i}x")).collect();
    for (i, name) in names.iter().enumerate() {
        let service = if i % 2 == 0 {
            "grpc.health.v1.Health"
        } else {
            "tessera.v1.CredentialService"
        };
        let path = format!("/{service}/{name}");
        let response = RawCall::new(&path, frame(&[])).send(&channel).await;
        let status = response.expect("an answer");
        assert_ne!(status.status().code(), Code::Ok, "{path}");
    }
    let mut health = server.health().await;
    let request = HealthCheckRequest::default();
    health.check(request).await.expect("health check");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let after = scrape(addr);
    for name in &names {
        assert!(
            !after.contains(name.as_str()),
            "{name} is a label:\n{after}"
        );
    }
    let other = total(&after, "tessera_grpc_requests_total{method=\"other\",")
        - total(&before, "tessera_grpc_requests_total{method=\"other\",");
    assert_eq!(
        other, NAMES as f64,
        "made-up calls counted as other:\n{after}"
    );
    assert!(
        after.contains("tessera_grpc_requests_total{method=\"Check\",code=\"Ok\"}"),
        "a served method keeps its label:\n{after}"
    );
}
