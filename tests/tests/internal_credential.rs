//! The internal credential of one process: minted lazily once, stable
//! and multi-use while its process runs, accepted by ConsumeTicket without
//! being consumed, and refused once its process has stopped. (Across
//! replicas: `replicas/internal_credentials.rs`.)

use std::collections::HashSet;
use std::time::Duration;

use tessera_client::pb::PrincipalKind;
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Code;
use tessera_tests::grpc::verify_bearer;
use tessera_tests::secrets::{assert_not_logged, assert_refused, change_char};
use tessera_tests::sql::count;
use tessera_tests::tickets::internal;
use tessera_tests::{TestDatabase, TestServer, consume_ticket, now_seconds, seconds};

const INTERNAL_ID: &str = "server-internal";

// ---------------------------------------------------------------------------
// Internal credential
// ---------------------------------------------------------------------------

#[tokio::test]
async fn internal_credential_is_stable_and_multi_use() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_scheduler(&db, &[]).await;
    let mut client = server.scheduler().await;

    // Before any is minted, every value is refused.
    let unminted = token::generate(TokenKind::Internal);
    let status = consume_ticket(&mut client, unminted.expose(), "")
        .await
        .expect_err("no internal credential yet");
    assert_refused(&status, Code::Unauthenticated, None, unminted.expose());

    // Minted lazily, once, even when the first requests race.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { internal(&mut client).await })
        })
        .collect();
    let mut values = HashSet::new();
    for task in tasks {
        values.insert(task.await.expect("task"));
    }
    assert_eq!(
        values.len(),
        1,
        "concurrent first requests got different credentials"
    );
    let conn = db.connect().await;
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM internal_credentials").await,
        1
    );

    let credential = internal(&mut client).await;
    assert!(values.contains(&credential));
    assert!(credential.starts_with("tsr_int_"));
    assert_eq!(token::parse(&credential), Ok(TokenKind::Internal));
    let mut other = server.scheduler().await;
    assert_eq!(internal(&mut other).await, credential, "stable per process");

    let mut minted_at = None;
    for purpose in ["", "ws-upgrade", "", "ws-upgrade"] {
        let identity = consume_ticket(&mut other, &credential, purpose)
            .await
            .expect("multi-use");
        assert_eq!(identity.user_id, INTERNAL_ID);
        assert_eq!(identity.provider, INTERNAL_ID);
        assert!(identity.internal);
        let at = seconds!(identity.minted_at);
        assert!(
            (now_seconds() - 60.0..=now_seconds() + 1.0).contains(&at),
            "minted_at {at}"
        );
        assert_eq!(*minted_at.get_or_insert(at), at, "minted_at is stable");
    }
    // A bearer too: the INTERNAL principal, named by its public id.
    let principal = verify_bearer(&mut other, &credential)
        .await
        .expect("a bearer");
    assert_eq!(principal.kind(), PrincipalKind::Internal);
    assert_eq!(principal.subject, INTERNAL_ID);
    assert_eq!(
        principal.credential_id,
        token::credential_id("int", &credential)
    );

    // Other values stay refused once one is minted.
    let forged = token::generate(TokenKind::Internal);
    for bad in [
        unminted.expose().to_owned(),
        forged.expose().to_owned(),
        change_char(&credential, 20),
        credential.replacen("tsr_int_", "tsr_tkt_", 1),
    ] {
        let status = consume_ticket(&mut client, &bad, "")
            .await
            .expect_err("not the internal credential");
        assert_refused(&status, Code::Unauthenticated, None, &bad);
        assert_refused(&status, Code::Unauthenticated, None, &credential);
    }
    assert_eq!(internal(&mut client).await, credential);
    assert_not_logged(&server, &[credential]);
}

#[tokio::test]
async fn internal_credential_dies_with_its_process() {
    let db = TestDatabase::sqlite();
    let mut first = TestServer::start_scheduler(&db, &[]).await;
    let mut client = first.scheduler().await;
    let old = internal(&mut client).await;
    drop(client);
    first.terminate();
    let status = first.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit {status:?}:\n{}", first.stderr());

    let second = TestServer::start_scheduler(&db, &[]).await;
    let mut client = second.scheduler().await;
    let status = consume_ticket(&mut client, &old, "")
        .await
        .expect_err("a previous process's credential");
    assert_refused(&status, Code::Unauthenticated, None, &old);
    let new = internal(&mut client).await;
    assert_ne!(new, old, "a new process mints a new credential");
    consume_ticket(&mut client, &new, "")
        .await
        .expect("the new one");
    let status = consume_ticket(&mut client, &old, "")
        .await
        .expect_err("still refused");
    assert_refused(&status, Code::Unauthenticated, None, &old);
}
