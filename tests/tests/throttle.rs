//! Throttling of failed authentication.

use std::time::{Duration, Instant};
use tessera_client::pb;
use tessera_client::tonic::Code;

use tessera_tests::audit::failed_authentications;
use tessera_tests::grpc::{consume_ticket, mint_ticket, provision_workspace, verify_as};
use tessera_tests::install::bootstrap_admin;
use tessera_tests::sql::count;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status, service_secret};
use tonic_types::StatusExt;

/// A server whose service `PLATFORM` has `secret`, allowing `failures`
/// failed authentications a minute per key, with `env` besides.
async fn start(
    db: &TestDatabase,
    secret: &str,
    failures: &str,
    env: &[(&str, &str)],
) -> TestServer {
    let options = ServerOptions::new()
        .service("PLATFORM", secret)
        .env("TESSERA_AUTH_FAILURES_PER_MINUTE", failures)
        .envs(env);
    TestServer::start(db, options).await
}

/// ConsumeInstallToken of a well-formed install token that is not the one
/// on file.
fn wrong_install_token() -> pb::ConsumeInstallTokenRequest {
    pb::ConsumeInstallTokenRequest {
        install_token: tessera_client::token::generate(tessera_client::token::TokenKind::Install)
            .expose()
            .to_owned(),
        admin_email: "ada@example.com".to_owned(),
        admin_name: "Ada".to_owned(),
    }
}

/// VerifyBearer of `caller`'s own bearer, as `caller`.
async fn verify(server: &TestServer, caller: &str) -> Result<(), tessera_client::tonic::Status> {
    verify_as(server, caller, caller).await.map(|_| ())
}

#[tokio::test]
async fn a_peer_that_keeps_failing_is_refused_with_retry_info() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let options = ServerOptions::new()
        .service("SCHEDULER", &secret)
        .env("TESSERA_AUTH_FAILURES_PER_MINUTE", "3");
    let server = TestServer::start(&db, options).await;

    // Many successful calls are never throttled.
    for _ in 0..20 {
        verify(&server, &secret).await.expect("good caller");
    }
    for attempt in 0..3 {
        let status = verify(&server, &format!("wrong-secret-{attempt}"))
            .await
            .expect_err("bad caller");
        assert_status(&status, Code::Unauthenticated, None);
    }
    let status = verify(&server, "wrong-secret-3")
        .await
        .expect_err("over budget");
    assert_status(&status, Code::ResourceExhausted, None);
    let retry = status
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay);
    assert!(
        retry.is_some_and(|delay| delay.as_secs() <= 60),
        "{status:?}"
    );

    // The server is up and serving other checks (health needs no credentials).
    assert!(server.health_status("").await.is_some());
}

#[tokio::test]
async fn a_failing_runtime_is_refused_but_relayed_bad_tokens_do_not_count() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("platform");
    let server = start(&db, &secret, "2", &[]).await;
    let mut admin = server.client(Some(&secret)).await;
    let provisioned = provision_workspace(&mut admin, "ws", "")
        .await
        .expect("provision");
    // Relayed bad tokens do not count against the service that relays them.
    for _ in 0..5 {
        let status = consume_ticket(&mut admin, "garbage", "")
            .await
            .expect_err("bad ticket");
        assert_status(&status, Code::Unauthenticated, Some("TICKET_MALFORMED"));
    }
    let unknown = tessera_client::token::generate(tessera_client::token::TokenKind::WorkspaceAuth);
    let mut runtime = server.client(Some(unknown.expose())).await;
    let register = pb::RegisterWorkspaceRequest {
        workspace_id: "ws".into(),
        reissue_auth_token: false,
        ..Default::default()
    };
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            runtime
                .register_workspace(register.clone())
                .await
                .expect_err("unknown token")
                .code(),
        );
    }
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::ResourceExhausted
        ]
    );
    // This peer is now refused on every call that fails again, but a valid
    // credential from it is still served: the workspace's real
    // registration token registers.
    let status = runtime
        .register_workspace(register.clone())
        .await
        .expect_err("the failing credential, again");
    assert_status(&status, Code::ResourceExhausted, None);
    let mut real = server.client(Some(&provisioned.registration_token)).await;
    real.register_workspace(register)
        .await
        .expect("a valid credential from a refused peer");
}

/// ConsumeInstallToken needs no caller credential, so its handler judges
/// the install token itself; a wrong one still counts against the failure
/// budget, and a wrong one past the budget is refused as throttled.
#[tokio::test]
async fn wrong_install_tokens_are_charged_to_the_failure_budget() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .env("TESSERA_AUTH_FAILURES_PER_MINUTE", "2")
        .env("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "1000");
    let server = TestServer::start(&db, options).await;
    let mut anonymous = server.client(None).await;
    let mut consume = async || {
        let request = wrong_install_token();
        anonymous.consume_install_token(request).await.map(|_| ())
    };
    for _ in 0..2 {
        let status = consume().await.expect_err("a wrong install token");
        assert_status(&status, Code::Unauthenticated, None);
    }
    let status = consume().await.expect_err("over the failure budget");
    assert_status(&status, Code::ResourceExhausted, None);
}

/// Once the first admin exists every ConsumeInstallToken is refused
/// (FAILED_PRECONDITION) and audited; those refusals are charged like wrong
/// tokens, so a flood of them from one address is bounded.
#[tokio::test]
async fn refused_redemptions_after_the_first_admin_are_charged() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .env("TESSERA_AUTH_FAILURES_PER_MINUTE", "2")
        .env("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "1000");
    let server = TestServer::start(&db, options).await;
    bootstrap_admin(&server).await;
    let mut anonymous = server.client(None).await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let request = wrong_install_token();
        let status = anonymous.consume_install_token(request).await;
        codes.push(status.expect_err("the first admin exists").code());
    }
    let refused = Code::FailedPrecondition;
    let throttled = Code::ResourceExhausted;
    assert_eq!(codes, [refused, refused, throttled, throttled]);
}

/// Refused redemptions from a refused address are audited one by one only
/// up to ten times its failure budget a minute, and only counted beyond, so
/// a flood writes a bounded number of audit entries; and the real install
/// token, redeemed from that address during the flood, is still accepted.
#[tokio::test]
async fn a_refused_peer_writes_a_bounded_number_of_redemption_entries() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .env("TESSERA_AUTH_FAILURES_PER_MINUTE", "1")
        .env("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "1000");
    let server = TestServer::start(&db, options).await;
    let mut anonymous = server.client(None).await;
    for _ in 0..30 {
        let request = wrong_install_token();
        anonymous
            .consume_install_token(request)
            .await
            .expect_err("a wrong install token");
    }
    let sql = "SELECT COUNT(*) FROM audit_log WHERE action = 'install_token.consume'";
    let audited = count(&db.connect().await, sql).await;
    assert_eq!(audited, 11, "the first refusal and ten more, one by one");
    bootstrap_admin(&server).await;
}

/// A credential that cannot be checked because the database is away has
/// not failed: nothing is charged, so once the database is back the caller,
/// and a service calling from the same address, are served at once.
#[tokio::test]
async fn an_outage_during_authentication_is_not_charged() {
    let db = TestDatabase::postgres_required().await;
    let secret = service_secret("platform");
    let server = start(&db, &secret, "3", &[]).await;
    let first = bootstrap_admin(&server).await;
    let user_id = first.admin.expect("admin principal").subject;
    let mut user = server.client(Some(&first.admin_token)).await;

    db.refuse_connections().await;
    for _ in 0..5 {
        let status = mint_ticket(&mut user, &user_id, "", 0)
            .await
            .expect_err("the database is away");
        assert_status(&status, Code::Unavailable, None);
    }
    db.allow_connections().await;

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match mint_ticket(&mut user, &user_id, "", 0).await {
            Ok(_) => break,
            Err(status) => {
                assert_ne!(
                    status.code(),
                    Code::ResourceExhausted,
                    "charged: {status:?}"
                );
                assert!(Instant::now() < deadline, "not served again: {status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    verify(&server, &secret)
        .await
        .expect("a service at the same address");
}

/// Junk bearers from one address refuse that address's failing calls, never
/// a valid credential from it: a service secret and a user access token
/// sent from the same address are served.
#[tokio::test]
async fn a_valid_credential_is_served_from_a_peer_that_keeps_failing() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("platform");
    let server = start(&db, &secret, "3", &[]).await;
    let first = bootstrap_admin(&server).await;
    let user_id = first.admin.expect("admin principal").subject;
    for attempt in 0..5 {
        let status = verify(&server, &format!("junk-{attempt}"))
            .await
            .expect_err("junk bearer");
        let expected = if attempt < 3 {
            Code::Unauthenticated
        } else {
            Code::ResourceExhausted
        };
        assert_status(&status, expected, None);
    }
    verify(&server, &secret)
        .await
        .expect("the service is served");
    let mut user = server.client(Some(&first.admin_token)).await;
    mint_ticket(&mut user, &user_id, "", 0)
        .await
        .expect("the user is served");
    let status = verify(&server, "junk-again").await.expect_err("junk again");
    assert_status(&status, Code::ResourceExhausted, None);
}

/// The bearer sent along with an anonymous call belongs to whoever relays
/// it; wrong install tokens in the message charge the address, not it.
#[tokio::test]
async fn wrong_install_tokens_do_not_charge_the_relaying_bearer() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("platform");
    let anonymous_rate = [("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "1000")];
    let server = start(&db, &secret, "2", &anonymous_rate).await;
    let mut admin = server.client(Some(&secret)).await;
    let provisioned = provision_workspace(&mut admin, "ws", "")
        .await
        .expect("provision");
    let mut relay = server.client(Some(&provisioned.registration_token)).await;
    for _ in 0..3 {
        let request = wrong_install_token();
        relay
            .consume_install_token(request)
            .await
            .expect_err("a wrong install token");
    }
    let register = pb::RegisterWorkspaceRequest {
        workspace_id: "ws".into(),
        reissue_auth_token: false,
        ..Default::default()
    };
    relay
        .register_workspace(register)
        .await
        .expect("the relaying bearer was not charged");
}

/// A refused peer's failures are audited one by one up to ten times its
/// failure budget a minute, so a flood from one address writes a bounded
/// number of audit entries; and however much it keeps failing, a valid
/// credential from that address (a service secret, a user token) is served.
#[tokio::test]
async fn a_refused_peer_audits_boundedly_and_still_serves_valid_credentials() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("platform");
    let server = start(&db, &secret, "1", &[]).await;
    let first = bootstrap_admin(&server).await;
    let user_id = first.admin.expect("admin principal").subject;
    let status = verify(&server, "junk").await.expect_err("junk bearer");
    assert_status(&status, Code::Unauthenticated, None);
    for attempt in 0..30 {
        let status = verify(&server, &format!("junk-{attempt}"))
            .await
            .expect_err("junk from a refused peer");
        assert_status(&status, Code::ResourceExhausted, None);
    }
    verify(&server, &secret)
        .await
        .expect("a valid service secret from the refused address");
    let mut user = server.client(Some(&first.admin_token)).await;
    mint_ticket(&mut user, &user_id, "", 0)
        .await
        .expect("a valid user token from the refused address");
    let audited = failed_authentications(&db).await;
    assert_eq!(audited, 11, "the first failure and ten more, one by one");
}

/// A failing credential is charged even when its address is already
/// refused: presented again, it is refused before verification (no audit
/// entry, no attempt spent).
#[tokio::test]
async fn a_failing_credential_from_a_refused_peer_is_charged() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("platform");
    let server = start(&db, &secret, "1", &[]).await;
    verify(&server, "junk").await.expect_err("junk bearer");
    let forged = tessera_client::token::generate(tessera_client::token::TokenKind::UserAccess);
    for _ in 0..6 {
        let status = verify(&server, forged.expose())
            .await
            .expect_err("an unknown token from a refused peer");
        assert_status(&status, Code::ResourceExhausted, None);
    }
    let audited = failed_authentications(&db).await;
    assert_eq!(audited, 2, "the junk and the forged token's first try");
}
