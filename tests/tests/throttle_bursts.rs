//! Throttling under concurrent bursts of failures from one address: the
//! peer's budget is spent by the failures as they are charged, not by when
//! the calls arrived, so a burst that arrives while the peer is not yet
//! refused is still answered (and audited) within its budget — for bearers
//! and for redemptions, whose credential is in the message.

use tessera_client::pb;
use tessera_client::token::{TokenKind, generate};
use tessera_client::tonic::Code;
use tessera_tests::audit::failed_authentications;
use tessera_tests::grpc::{verify_as, verify_bearer};
use tessera_tests::metrics::{metrics_addr, sample, scrape};
use tessera_tests::sql::count;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, service_secret};

/// Failures a minute per key; its refill (20 s) is longer than the test.
const BUDGET: usize = 3;
/// A refused peer's failures still audited one by one: ten budgets' worth.
const REFUSED_AUDITS: usize = 10 * BUDGET;
const BURST: usize = 64;

#[tokio::test]
async fn a_concurrent_burst_of_failures_is_answered_within_the_budget() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("platform");
    let options = ServerOptions::new()
        .service("PLATFORM", &secret)
        .env("TESSERA_AUTH_FAILURES_PER_MINUTE", &BUDGET.to_string())
        .env("TESSERA_METRICS_LISTEN", "127.0.0.1:0");
    let server = TestServer::start(&db, options).await;

    // Well-formed user tokens nobody issued: each is looked up in the
    // database, so the burst is still being verified when its first
    // failures are charged. Each token is new, so only the peer is refused.
    // Every client is connected first, so the calls leave together.
    let mut clients = Vec::with_capacity(BURST);
    for _ in 0..BURST {
        let forged = generate(TokenKind::UserAccess);
        clients.push((server.client(Some(forged.expose())).await, forged));
    }
    let mut calls = tokio::task::JoinSet::new();
    for (mut client, forged) in clients {
        calls.spawn(async move { verify_bearer(&mut client, forged.expose()).await });
    }
    let mut codes = Vec::with_capacity(BURST);
    while let Some(answer) = calls.join_next().await {
        let status = answer.expect("a call").expect_err("a forged token");
        codes.push(status.code());
    }
    let failed = codes
        .iter()
        .filter(|c| **c == Code::Unauthenticated)
        .count();
    let refused = codes
        .iter()
        .filter(|c| **c == Code::ResourceExhausted)
        .count();
    assert_eq!(
        (failed, refused),
        (BUDGET, BURST - BUDGET),
        "answers: {codes:?}"
    );

    let audited = usize::try_from(failed_authentications(&db).await).expect("a count");
    assert_eq!(audited, BUDGET + REFUSED_AUDITS, "audited one by one");
    let metrics = scrape(metrics_addr(&server).await);
    let unaudited = sample(&metrics, "tessera_auth_failures_unaudited_total");
    assert_eq!(unaudited, (BURST - BUDGET - REFUSED_AUDITS) as f64);

    // The address stays served for a valid credential.
    verify_as(&server, &secret, &secret)
        .await
        .expect("a valid service secret from the refused address");
}

#[tokio::test]
async fn a_concurrent_burst_of_wrong_install_tokens_is_audited_within_its_bound() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .env("TESSERA_AUTH_FAILURES_PER_MINUTE", &BUDGET.to_string())
        .env("TESSERA_METRICS_LISTEN", "127.0.0.1:0");
    let server = TestServer::start(&db, options).await;

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        let mut client = server.client(None).await;
        let request = pb::ConsumeInstallTokenRequest {
            install_token: generate(TokenKind::Install).expose().to_owned(),
            admin_email: "ada@example.com".to_owned(),
            admin_name: "Ada".to_owned(),
        };
        calls.spawn(async move { client.consume_install_token(request).await });
    }
    let mut codes = Vec::with_capacity(BURST);
    while let Some(answer) = calls.join_next().await {
        codes.push(answer.expect("a call").expect_err("a wrong token").code());
    }
    let failed = codes
        .iter()
        .filter(|c| **c == Code::Unauthenticated)
        .count();
    assert_eq!(failed, BUDGET, "answers: {codes:?}");

    let sql = "SELECT COUNT(*) FROM audit_log WHERE action = 'install_token.consume'";
    let audited = usize::try_from(count(&db.connect().await, sql).await).expect("a count");
    assert_eq!(audited, BUDGET + REFUSED_AUDITS, "audited one by one");
    let metrics = scrape(metrics_addr(&server).await);
    let unaudited = sample(&metrics, "tessera_auth_failures_unaudited_total");
    assert_eq!(unaudited, (BURST - BUDGET - REFUSED_AUDITS) as f64);
}
