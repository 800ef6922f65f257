//! VerifyBearer and caller authentication, end to end.

use tessera_client::pb::{self, PrincipalKind};
use tessera_client::tonic::Code;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status, service_secret};

async fn verify(
    server: &TestServer,
    caller: &str,
    token: &str,
) -> Result<pb::Principal, tessera_client::tonic::Status> {
    let mut client = server.client(Some(caller)).await;
    let request = pb::VerifyBearerRequest {
        token: token.to_owned(),
    };
    let response = client.verify_bearer(request).await?;
    Ok(response.into_inner().principal.expect("principal"))
}

#[tokio::test]
async fn service_secret_resolves_to_synthetic_admin_user() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let server = TestServer::start(&db, ServerOptions::new().service("SCHEDULER", &secret)).await;

    let principal = verify(&server, &secret, &secret).await.expect("verify");
    assert_eq!(principal.kind(), PrincipalKind::Service);
    assert_eq!(principal.email, "scheduler@system.local");
    assert_eq!(principal.display_name, "Scheduler");
    assert_eq!(principal.groups, vec!["Admin".to_owned()]);
    assert!(principal.credential_id.starts_with("svc_"));
    assert!(!principal.credential_id.contains(&secret));

    // The same user every time: seeding is idempotent.
    let again = verify(&server, &secret, &secret).await.expect("verify");
    assert_eq!(again.subject, principal.subject);
}

#[tokio::test]
async fn rejected_tokens_are_all_unauthenticated() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let server = TestServer::start(&db, ServerOptions::new().service("SCHEDULER", &secret)).await;
    let forged_ticket = "tsr_tkt_1111111111111111111111111111111111111111111111111";
    let unknown_user_token =
        tessera_client::token::generate(tessera_client::token::TokenKind::UserAccess);
    let unminted_internal =
        tessera_client::token::generate(tessera_client::token::TokenKind::Internal);
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
        let status = verify(&server, &secret, token)
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
        let principal = verify(&server, secret, secret)
            .await
            .expect("both rotation secrets work");
        assert_eq!(principal.email, "scheduler@system.local");
    }
    // A short secret grants nothing, neither as caller nor as token.
    let status = verify(&server, "todo-change-me", &current)
        .await
        .expect_err("short caller");
    assert_status(&status, Code::Unauthenticated, None);
    let status = verify(&server, &current, "todo-change-me")
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
    let secret = service_secret("scheduler");
    let server = TestServer::start(&db, ServerOptions::new().service("SCHEDULER", &secret)).await;

    let mut anonymous = server.client(None).await;
    let request = pb::VerifyBearerRequest {
        token: secret.clone(),
    };
    let status = anonymous
        .verify_bearer(request)
        .await
        .expect_err("no caller credentials");
    assert_status(&status, Code::Unauthenticated, None);

    // The internal credential authenticates, but it is not a SERVICE.
    let mut service = server.client(Some(&secret)).await;
    let internal = service
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await
        .expect("internal credential")
        .into_inner()
        .credential;
    let principal = verify(&server, &secret, &internal)
        .await
        .expect("internal verifies");
    assert_eq!(principal.kind(), PrincipalKind::Internal);
    assert_eq!(principal.subject, "server-internal");
    let status = verify(&server, &internal, &secret)
        .await
        .expect_err("internal is not a service");
    assert_status(&status, Code::PermissionDenied, None);
}

#[tokio::test]
async fn seeding_failure_is_unauthenticated_and_recovers() {
    use sea_orm::ConnectionTrait;
    let db = TestDatabase::sqlite();
    let out = tessera_tests::run_tessera(&["migrate"], &[("DATABASE_URL", db.url())]);
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = db.connect().await;
    conn.execute_unprepared(
        "CREATE TRIGGER refuse_users BEFORE INSERT ON users BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .await
    .expect("trigger");

    let secret = service_secret("scheduler");
    let server = TestServer::start(&db, ServerOptions::new().service("SCHEDULER", &secret)).await;
    let status = verify(&server, &secret, &secret)
        .await
        .expect_err("seeding fails");
    assert_status(&status, Code::Unauthenticated, None);
    assert!(server.stderr().contains("service user unavailable"));

    // The server is still up, and seeds lazily once the fault is gone.
    conn.execute_unprepared("DROP TRIGGER refuse_users")
        .await
        .expect("drop trigger");
    let principal = verify(&server, &secret, &secret)
        .await
        .expect("lazy seeding");
    assert_eq!(principal.email, "scheduler@system.local");
}

#[tokio::test]
async fn failed_authentication_is_audited_without_secrets() {
    use sea_orm::{ConnectionTrait, Statement};
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let server = TestServer::start(&db, ServerOptions::new().service("SCHEDULER", &secret)).await;
    let wrong = format!("{secret}-wrong");
    let _ = verify(&server, &wrong, "x").await.expect_err("bad caller");
    let _ = verify(&server, &secret, &wrong)
        .await
        .expect_err("bad token");

    let conn = db.connect().await;
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT action, outcome, actor, resource, credential_id FROM audit_log ORDER BY id",
        ))
        .await
        .expect("audit rows");
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            (0..5)
                .map(|i| row.try_get_by_index::<String>(i).expect("column"))
                .collect()
        })
        .collect();
    assert!(
        rows.iter()
            .any(|r| r[0] == "caller.authenticate" && r[1] != "ok"),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r[0] == "bearer.verify" && r[1] != "ok"),
        "{rows:?}"
    );
    for row in &rows {
        for value in row {
            assert!(!value.contains(&secret), "secret in audit row {row:?}");
        }
    }
}
