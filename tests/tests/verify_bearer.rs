//! VerifyBearer and caller authentication, end to end: service secrets
//! (trimmed, rotated, too short), the tokens VerifyBearer refuses, the
//! `authorization` metadata parsed strictly, lazy seeding of service users,
//! and failed authentication in the audit table.

use prost::Message;
use sea_orm::ConnectionTrait;
use std::time::Duration;
use tessera_client::pb::{self, PrincipalKind};
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Code;
use tessera_tests::audit::audit_rows;
use tessera_tests::fixture::Fixture;
use tessera_tests::grpc::{internal_credential, verify_as};
use tessera_tests::raw::{RawCall, frame};
use tessera_tests::sql::count;
use tessera_tests::{
    ServerOptions, TestDatabase, TestServer, assert_status, scheduler_secret, service_secret,
};

#[tokio::test]
async fn service_secret_resolves_to_synthetic_admin_user() {
    let db = TestDatabase::sqlite();
    let secret = scheduler_secret();
    let server = TestServer::start(&db, ServerOptions::scheduler()).await;

    let principal = verify_as(&server, &secret, &secret).await.expect("verify");
    assert_eq!(principal.kind(), PrincipalKind::Service);
    assert_eq!(principal.email, "scheduler@system.local");
    assert_eq!(principal.display_name, "Scheduler");
    assert_eq!(principal.groups, vec!["Admin".to_owned()]);
    assert!(principal.credential_id.starts_with("svc_"));
    assert!(!principal.credential_id.contains(&secret));

    // The same user every time: seeding is idempotent.
    let again = verify_as(&server, &secret, &secret).await.expect("verify");
    assert_eq!(again.subject, principal.subject);
}

#[tokio::test]
async fn rejected_tokens_are_all_unauthenticated() {
    let db = TestDatabase::sqlite();
    let secret = scheduler_secret();
    let server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let forged_ticket = "tsr_tkt_1111111111111111111111111111111111111111111111111";
    let unknown_user_token = token::generate(TokenKind::UserAccess);
    let unminted_internal = token::generate(TokenKind::Internal);
    for token in [
        "",
        "garbage",
        &format!("{secret}x"),
        &secret[..31],
        forged_ticket,
        unknown_user_token.expose(),
        unminted_internal.expose(),
        &"a".repeat(100_000),
    ] {
        let status = verify_as(&server, &secret, token)
            .await
            .expect_err("must be refused");
        assert_status(&status, Code::Unauthenticated, None);
    }
}

#[tokio::test]
async fn short_empty_and_rotated_secrets() {
    let db = TestDatabase::sqlite();
    let current = service_secret("current");
    let next = service_secret("next");
    let options = ServerOptions::new()
        .service("SCHEDULER", &format!(" {current} , {next} "))
        .service("SHORT", "todo-change-me")
        .service("EMPTY", "   ");
    let server = TestServer::start(&db, options).await;

    for secret in [&current, &next] {
        let principal = verify_as(&server, secret, secret)
            .await
            .expect("both rotation secrets work");
        assert_eq!(principal.email, "scheduler@system.local");
    }
    // A short secret grants nothing, neither as caller nor as token.
    let status = verify_as(&server, "todo-change-me", &current)
        .await
        .expect_err("short caller");
    assert_status(&status, Code::Unauthenticated, None);
    let status = verify_as(&server, &current, "todo-change-me")
        .await
        .expect_err("short token");
    assert_status(&status, Code::Unauthenticated, None);

    let logs = server.stderr();
    assert!(
        logs.contains("TESSERA_SERVICE_TOKEN_SHORT"),
        "warning names the variable:\n{logs}"
    );
    for secret in [current.as_str(), next.as_str(), "todo-change-me"] {
        assert!(!logs.contains(secret), "a service secret reached the logs");
        assert!(
            !server.stdout().contains(secret),
            "a service secret reached stdout"
        );
    }
}

#[tokio::test]
async fn callers_need_a_service_bearer() {
    let db = TestDatabase::sqlite();
    let secret = scheduler_secret();
    let server = TestServer::start(&db, ServerOptions::scheduler()).await;

    let mut anonymous = server.client(None).await;
    let status = tessera_tests::grpc::verify_bearer(&mut anonymous, &secret)
        .await
        .expect_err("no caller credentials");
    assert_status(&status, Code::Unauthenticated, None);

    // The internal credential authenticates, but it is not a SERVICE.
    let internal = internal_credential(&mut server.scheduler().await)
        .await
        .expect("internal credential");
    let principal = verify_as(&server, &secret, &internal)
        .await
        .expect("internal verifies");
    assert_eq!(principal.kind(), PrincipalKind::Internal);
    assert_eq!(principal.subject, "server-internal");
    let status = verify_as(&server, &internal, &secret)
        .await
        .expect_err("internal is not a service");
    assert_status(&status, Code::PermissionDenied, None);
}

#[tokio::test]
async fn seeding_failure_is_unauthenticated_and_recovers() {
    let db = TestDatabase::sqlite();
    tessera_tests::migrate(db.url());
    let conn = db.connect().await;
    conn.execute_unprepared(
        "CREATE TRIGGER refuse_users BEFORE INSERT ON users BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .await
    .expect("trigger");

    let secret = scheduler_secret();
    let server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let status = verify_as(&server, &secret, &secret)
        .await
        .expect_err("seeding fails");
    assert_status(&status, Code::Unauthenticated, None);
    assert!(
        server
            .wait_for_log(
                |line| line.contains("service user unavailable"),
                Duration::from_secs(5)
            )
            .await,
        "{}",
        server.stderr()
    );

    // The server is still up, and seeds lazily once the fault is gone.
    conn.execute_unprepared("DROP TRIGGER refuse_users")
        .await
        .expect("drop trigger");
    let principal = verify_as(&server, &secret, &secret)
        .await
        .expect("lazy seeding");
    assert_eq!(principal.email, "scheduler@system.local");
}

#[tokio::test]
async fn failed_authentication_is_audited_without_secrets() {
    let db = TestDatabase::sqlite();
    let secret = scheduler_secret();
    let server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let wrong = format!("{secret}-wrong");
    let _ = verify_as(&server, &wrong, "x")
        .await
        .expect_err("bad caller");
    let _ = verify_as(&server, &secret, &wrong)
        .await
        .expect_err("bad token");

    let rows = audit_rows(&db.connect().await).await;
    // Each names the address the call came from.
    let from_the_client = |r: &tessera_tests::audit::AuditRow| r.peer.starts_with("127.0.0.1:");
    assert!(
        rows.iter()
            .any(|r| r.action == "caller.authenticate" && r.outcome != "ok" && from_the_client(r)),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.action == "bearer.verify" && r.outcome != "ok" && from_the_client(r)),
        "{rows:?}"
    );
    tessera_tests::audit::assert_not_in_audit(&rows, &[&secret]);
}

// ---------------------------------------------------------------------------
// The authorization metadata, byte by byte
// ---------------------------------------------------------------------------

/// `authorization` values, each with whether it authenticates the
/// scheduler: the token is exactly what follows `Bearer` (any case) and
/// one space.
fn authorization_cases(secret: &str) -> Vec<(Vec<u8>, bool)> {
    let accepted = |value: String| (value.into_bytes(), true);
    let refused = |value: Vec<u8>| (value, false);
    let mut invalid_utf8 = format!("Bearer {secret}").into_bytes();
    invalid_utf8.extend_from_slice(b"\xff");
    let mut latin1 = b"Bearer ".to_vec();
    latin1.extend_from_slice(b"\xe9t\xe9\xff\xfe");
    vec![
        accepted(format!("Bearer {secret}")),
        // HTTP authentication schemes are case-insensitive (RFC 9110).
        accepted(format!("bearer {secret}")),
        accepted(format!("BEARER {secret}")),
        accepted(format!("bEaReR {secret}")),
        // No scheme, another scheme, a doubled scheme.
        refused(secret.to_owned().into_bytes()),
        refused(format!("Basic {secret}").into_bytes()),
        refused(format!("Token {secret}").into_bytes()),
        refused(format!("Bearer Bearer {secret}").into_bytes()),
        refused(format!("Bearer{secret}").into_bytes()),
        // Other separators: the token is exactly what follows one space.
        refused(format!("Bearer  {secret}").into_bytes()),
        refused(format!("Bearer\t{secret}").into_bytes()),
        refused(format!("Bearer {secret} ").into_bytes()),
        refused(format!("Bearer {secret}x").into_bytes()),
        // Nothing to check.
        refused(b"Bearer".to_vec()),
        refused(b"Bearer ".to_vec()),
        refused(Vec::new()),
        // Bytes that are not UTF-8 (HTTP/2 carries them; tonic's ASCII
        // metadata API would refuse to build them).
        refused(invalid_utf8),
        refused(latin1),
        refused(b"\xff\xfe\xfd".to_vec()),
    ]
}

/// Sends VerifyBearer of the scheduler's secret with each value of
/// [`authorization_cases`] as raw bytes: OK with the scheduler's principal,
/// or UNAUTHENTICATED.
async fn assert_raw_authorization_values(fx: &Fixture, request: &bytes::Bytes) {
    let secret = scheduler_secret();
    let mut summary = Vec::new();
    for (value, ok) in &authorization_cases(&secret) {
        let shown = String::from_utf8_lossy(value).replace(&secret, "<secret>");
        let response = RawCall::new("VerifyBearer", request.clone())
            .authorization(value)
            .send(&fx.channel)
            .await
            .unwrap_or_else(|err| panic!("{shown:?}: no answer: {err}"));
        let status = response.status();
        if *ok {
            assert_eq!(status.code(), Code::Ok, "{shown:?}: {status:?}");
            let message = response.messages.first().expect("a response message");
            let principal = pb::VerifyBearerResponse::decode(message.clone())
                .expect("a VerifyBearerResponse")
                .principal
                .expect("principal");
            assert_eq!(principal.email, "scheduler@system.local", "{shown:?}");
        } else {
            assert_status(status, Code::Unauthenticated, None);
        }
        summary.push(format!("{shown:?} -> {:?}", status.code()));
    }
    eprintln!(
        "verify_bearer: authorization variants:\n  {}",
        summary.join("\n  ")
    );
}

/// No authorization entry at all, the token in another header, and the
/// ASCII refusals again through the generated client: UNAUTHENTICATED.
async fn assert_missing_or_misplaced_authorization_is_refused(
    fx: &Fixture,
    request: &bytes::Bytes,
) {
    let secret = scheduler_secret();
    let status = fx.raw(RawCall::new("VerifyBearer", request.clone())).await;
    assert_status(&status, Code::Unauthenticated, None);
    let status = fx
        .raw(RawCall::new("VerifyBearer", request.clone()).header(
            "x-authorization",
            http::HeaderValue::from_str(&format!("Bearer {secret}")).expect("value"),
        ))
        .await;
    assert_status(&status, Code::Unauthenticated, None);
    for value in [
        secret.clone(),
        format!("Bearer Bearer {secret}"),
        format!("Bearer  {secret}"),
    ] {
        let mut anonymous = fx.server.client(None).await;
        let mut call = tessera_client::tonic::Request::new(pb::VerifyBearerRequest {
            token: secret.clone(),
        });
        call.metadata_mut()
            .insert("authorization", value.parse().expect("ASCII metadata"));
        let status = anonymous
            .verify_bearer(call)
            .await
            .expect_err("refused through tonic as well");
        assert_status(&status, Code::Unauthenticated, None);
    }
}

#[tokio::test]
async fn authorization_metadata_is_parsed_strictly_and_safely() {
    let fx = Fixture::sqlite().await;
    let secret = scheduler_secret();
    let request = frame(
        &pb::VerifyBearerRequest {
            token: secret.clone(),
        }
        .encode_to_vec(),
    );
    assert_raw_authorization_values(&fx, &request).await;
    assert_missing_or_misplaced_authorization_is_refused(&fx, &request).await;

    // Failed authentications are audited without the presented value.
    let conn = fx.db.connect().await;
    let failures = count(
        &conn,
        "SELECT COUNT(*) FROM audit_log WHERE outcome <> 'ok' AND action = 'caller.authenticate'",
    )
    .await;
    assert!(failures >= 10, "{failures} failed authentications audited");
    let leaked = count(
        &conn,
        &format!(
            "SELECT COUNT(*) FROM audit_log WHERE actor LIKE '%{0}%' OR resource LIKE '%{0}%' \
             OR credential_id LIKE '%{0}%'",
            &secret[4..20]
        ),
    )
    .await;
    assert_eq!(leaked, 0, "a presented secret reached the audit log");
    fx.assert_survived().await;
}
