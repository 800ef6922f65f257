//! Limits: message size, server-side deadline, the client's `grpc-timeout`.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, TransactionTrait};
use tessera_client::pb;
use tessera_client::tonic::{Code, Request};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status, service_secret};

fn mint_request() -> pb::MintTicketRequest {
    pb::MintTicketRequest {
        user_id: "u".into(),
        provider: "p".into(),
        purpose: String::new(),
        ttl_seconds: 0,
    }
}

#[tokio::test]
async fn oversized_messages_are_refused_and_the_server_stays_up() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let options = ServerOptions::new()
        .service("SCHEDULER", &secret)
        .env("TESSERA_MAX_MESSAGE_BYTES", "1024");
    let server = TestServer::start(&db, options).await;
    let mut client = server.client(Some(&secret)).await;
    let request = pb::VerifyBearerRequest {
        token: "x".repeat(4096),
    };
    let status = client.verify_bearer(request).await.expect_err("too large");
    assert_status(&status, Code::OutOfRange, None);
    let request = pb::VerifyBearerRequest {
        token: secret.clone(),
    };
    client
        .verify_bearer(request)
        .await
        .expect("a normal call still works");
}

#[tokio::test]
async fn calls_stuck_on_the_database_end_at_the_server_deadline() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let options = ServerOptions::new()
        .service("SCHEDULER", &secret)
        .env("TESSERA_REQUEST_TIMEOUT_MS", "500");
    let server = TestServer::start(&db, options).await;
    let mut client = server.client(Some(&secret)).await;
    client.mint_ticket(mint_request()).await.expect("warm up");

    // Hold SQLite's write lock so MintTicket cannot finish.
    let conn = db.connect().await;
    let txn = conn.begin().await.expect("begin");
    txn.execute_unprepared("DELETE FROM audit_log WHERE id < 0")
        .await
        .expect("lock");

    let started = Instant::now();
    let status = client
        .mint_ticket(mint_request())
        .await
        .expect_err("deadline");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );

    // A shorter client deadline (grpc-timeout) wins over the server's.
    let mut request = Request::new(mint_request());
    request.set_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let status = client
        .mint_ticket(request)
        .await
        .expect_err("client deadline");
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );

    txn.rollback().await.expect("release");
    client
        .mint_ticket(mint_request())
        .await
        .expect("works again");
}
