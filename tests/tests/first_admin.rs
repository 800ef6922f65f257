//! Trading the install token for the first admin: ConsumeInstallToken
//! creates one human in `Admin` and returns its access token, which acts
//! as that user only; wrong, malformed and replayed tokens and bad admin
//! details are refused without using the token up; of concurrent consumes
//! exactly one wins.

use tessera_client::Client;
use tessera_client::pb::{self, InstallTokenState, PrincipalKind};
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::{Code, Status};
use tessera_tests::audit::{assert_not_in_audit, audit_rows};
use tessera_tests::grpc::{
    consume_install_token, consume_ticket, internal_credential, released_together, verify_as,
};
use tessera_tests::install::{
    ADA_EMAIL, ADA_NAME, boot_token, consume_as_ada, humans, install_status, issue_install_token,
    user_tokens,
};
use tessera_tests::secrets::{assert_no_fragment, change_char};
use tessera_tests::sql::strings;
use tessera_tests::{
    ServerOptions, TestDatabase, TestServer, assert_status, mint_ticket, scheduler_secret,
};

async fn start(db: &TestDatabase) -> TestServer {
    TestServer::start(db, ServerOptions::scheduler()).await
}

// ---------------------------------------------------------------------------
// The first admin
// ---------------------------------------------------------------------------

/// The admin principal in a ConsumeInstallToken response is Ada, a USER in
/// `Admin` only, named by the public id of the returned token, which
/// VerifyBearer resolves to the same principal.
async fn assert_ada_is_the_admin(server: &TestServer, response: &pb::ConsumeInstallTokenResponse) {
    let admin_token = &response.admin_token;
    assert_eq!(token::parse(admin_token), Ok(TokenKind::UserAccess));
    let admin = response.admin.as_ref().expect("admin principal");
    assert_eq!(admin.kind(), PrincipalKind::User);
    assert_eq!(admin.email, ADA_EMAIL);
    assert_eq!(admin.display_name, ADA_NAME);
    assert_eq!(admin.groups, vec!["Admin".to_owned()]);
    assert!(!admin.subject.is_empty());
    assert_eq!(
        admin.credential_id,
        token::credential_id("usr", admin_token)
    );

    let verified = verify_as(server, &scheduler_secret(), admin_token)
        .await
        .expect("the admin token verifies");
    assert_eq!(verified.kind(), PrincipalKind::User);
    assert_eq!(verified.subject, admin.subject);
    assert_eq!(verified.email, ADA_EMAIL);
    assert_eq!(verified.groups, vec!["Admin".to_owned()]);
    assert_eq!(verified.credential_id, admin.credential_id);
}

/// The admin mints tickets for itself only, and is refused the
/// SERVICE-only RPCs (a refused ConsumeTicket consumes nothing).
async fn assert_admin_acts_as_itself(server: &TestServer, admin_token: &str, subject: &str) {
    let mut as_admin = server.client(Some(admin_token)).await;
    let mut service = server.scheduler().await;
    let own = mint_ticket(&mut as_admin, subject, "", 0)
        .await
        .expect("a USER mints for its own user_id");
    let identity = consume_ticket(&mut service, &own, "")
        .await
        .expect("consume");
    assert_eq!(identity.user_id, subject);
    let err = mint_ticket(&mut as_admin, "someone-else", "", 0)
        .await
        .expect_err("not for another user");
    assert_status(&err, Code::PermissionDenied, None);

    let ticket = mint_ticket(&mut as_admin, subject, "", 0)
        .await
        .expect("mint");
    let err = consume_ticket(&mut as_admin, &ticket, "")
        .await
        .expect_err("ConsumeTicket is for services");
    assert_status(&err, Code::PermissionDenied, None);
    consume_ticket(&mut service, &ticket, "")
        .await
        .expect("the refused call did not consume the ticket");
    let err = verify_as(server, admin_token, admin_token)
        .await
        .expect_err("VerifyBearer is for services");
    assert_status(&err, Code::PermissionDenied, None);
    let err = internal_credential(&mut as_admin)
        .await
        .expect_err("GetInternalCredential is for services");
    assert_status(&err, Code::PermissionDenied, None);
}

/// The admin is in `Admin`, so it may call IssueInstallToken: without
/// force nothing is minted, and no token can be forced now.
async fn assert_no_second_install_token(as_admin: &mut Client) {
    let response = issue_install_token(as_admin, false)
        .await
        .expect("issue as admin");
    assert!(response.install_token.is_none(), "nothing minted");
    assert_eq!(response.state(), InstallTokenState::Consumed);
    let err = issue_install_token(as_admin, true)
        .await
        .expect_err("no token can be forced once the first admin exists");
    assert_status(&err, Code::FailedPrecondition, None);
}

async fn consume_makes_an_admin(db: TestDatabase) {
    let server = start(&db).await;
    let token = boot_token(&server).await;
    let response = consume_as_ada(&server, &token).await.expect("consume");
    assert_ada_is_the_admin(&server, &response).await;
    let admin_token = response.admin_token.clone();
    let subject = response.admin.expect("admin").subject;

    // Stored: one human, one hashed access token for it.
    let conn = db.connect().await;
    assert_eq!(humans(&conn).await, 1);
    let sql = "SELECT hash, subject FROM credentials WHERE kind = 'user_access'";
    let tokens = strings(&conn, sql, 2).await;
    assert_eq!(
        tokens,
        vec![vec![token::sha256_hex(&admin_token), subject.clone()]]
    );

    assert_admin_acts_as_itself(&server, &admin_token, &subject).await;
    assert_no_second_install_token(&mut server.client(Some(&admin_token)).await).await;
    assert_eq!(
        install_status(&server).await.state(),
        InstallTokenState::Consumed
    );
    assert_eq!(humans(&conn).await, 1);
    assert_eq!(user_tokens(&conn).await, 1);

    let audit = audit_rows(&conn).await;
    assert!(
        audit
            .iter()
            .any(|r| r.action == "install_token.consume" && r.outcome == "ok"),
        "{audit:?}"
    );
    assert_not_in_audit(&audit, &[&token, &admin_token]);
    for secret in [&token, &admin_token] {
        assert_no_fragment(&server.stderr(), secret, "the logs");
    }
}

#[tokio::test]
async fn consume_makes_an_admin_sqlite() {
    consume_makes_an_admin(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn consume_makes_an_admin_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    consume_makes_an_admin(db).await;
}

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

/// Wrong and malformed tokens are UNAUTHENTICATED. Returns two of them, for
/// the audit check.
async fn assert_wrong_tokens_refused(anonymous: &mut Client, token: &str) -> [String; 2] {
    let wrong = token::generate(TokenKind::Install);
    let user_token = token::generate(TokenKind::UserAccess);
    let changed = change_char(token, token.len() - 1);
    let swapped = token.replacen("tsr_ins_", "tsr_usr_", 1);
    let service = scheduler_secret();
    for bad in [
        wrong.expose(),
        user_token.expose(),
        "",
        "garbage",
        "tsr_ins_",
        &changed,
        &swapped,
        &format!("{token}x"),
        &token[..token.len() - 1],
        &format!(" {token}"),
        &service,
        &"a".repeat(100_000),
    ] {
        let err = consume_install_token(anonymous, bad, ADA_EMAIL, ADA_NAME)
            .await
            .expect_err("refused");
        assert_status(&err, Code::Unauthenticated, None);
    }
    [wrong.expose().to_owned(), changed]
}

/// Invalid admin details with the right token: INVALID_ARGUMENT.
async fn assert_invalid_admin_details_refused(anonymous: &mut Client, token: &str) {
    let long_email = format!("{}@example.com", "a".repeat(300));
    for (email, name) in [
        ("", ADA_NAME),
        ("not-an-email", ADA_NAME),
        ("a@b", ADA_NAME),
        ("@example.com", ADA_NAME),
        ("ad a@example.com", ADA_NAME),
        ("scheduler@system.local", ADA_NAME),
        ("someone@SYSTEM.LOCAL", ADA_NAME),
        (long_email.as_str(), ADA_NAME),
        (ADA_EMAIL, &"n".repeat(300)),
        (ADA_EMAIL, "bell\u{7}"),
    ] {
        let err = consume_install_token(anonymous, token, email, name)
            .await
            .expect_err("invalid admin details");
        assert_status(&err, Code::InvalidArgument, None);
    }
}

#[tokio::test]
async fn wrong_malformed_and_replayed_tokens() {
    let db = TestDatabase::sqlite();
    let server = start(&db).await;
    let token = boot_token(&server).await;
    let conn = db.connect().await;
    let mut anonymous = server.client(None).await;
    let [wrong, changed] = assert_wrong_tokens_refused(&mut anonymous, &token).await;
    assert_invalid_admin_details_refused(&mut anonymous, &token).await;

    // None of that used the token up.
    assert_eq!(
        install_status(&server).await.state(),
        InstallTokenState::Pending
    );
    assert_eq!(humans(&conn).await, 0);
    assert_eq!(user_tokens(&conn).await, 0);
    let admin = consume_install_token(&mut anonymous, &token, ADA_EMAIL, ADA_NAME)
        .await
        .expect("the token still works");
    assert!(admin.admin_token.starts_with("tsr_usr_"));

    // Replays fail, whatever the e-mail.
    for email in [ADA_EMAIL, "eve@example.com"] {
        let err = consume_install_token(&mut anonymous, &token, email, "Eve")
            .await
            .expect_err("replay");
        assert_status(&err, Code::FailedPrecondition, None);
    }
    assert_eq!(humans(&conn).await, 1);
    assert_eq!(user_tokens(&conn).await, 1);

    let audit = audit_rows(&conn).await;
    let consumes: Vec<_> = audit
        .iter()
        .filter(|r| r.action == "install_token.consume")
        .collect();
    assert_eq!(consumes.iter().filter(|r| r.outcome == "ok").count(), 1);
    assert!(
        consumes.iter().any(|r| r.outcome != "ok"),
        "failures audited"
    );
    assert_not_in_audit(&audit, &[&token, &wrong, &changed, &admin.admin_token]);
    assert_no_fragment(&server.stderr(), &token, "the logs");
}

// ---------------------------------------------------------------------------
// The consume race
// ---------------------------------------------------------------------------

/// What `n` anonymous consumes of `token`, each on its own connection and
/// released together, got: (e-mail, result).
async fn race_consumes(
    server: &TestServer,
    token: &str,
    n: usize,
) -> Vec<(String, Result<pb::ConsumeInstallTokenResponse, Status>)> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(server.client(None).await);
    }
    released_together(n, |i| {
        let (mut client, token) = (clients[i].clone(), token.to_owned());
        async move {
            let email = format!("admin{i}@example.com");
            let result = consume_install_token(&mut client, &token, &email, "Racer").await;
            (email, result)
        }
    })
    .await
}

async fn consume_race(db: TestDatabase) {
    const N: usize = 16;
    let server = start(&db).await;
    let token = boot_token(&server).await;
    let mut winners = Vec::new();
    for (email, result) in race_consumes(&server, &token, N).await {
        match result {
            Ok(response) => winners.push((email, response)),
            // The loser presented the right token: it is told the first
            // admin exists, never that its token was wrong.
            Err(status) => assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "a loser gets FAILED_PRECONDITION, not {status:?}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one consume succeeds");
    let (email, response) = &winners[0];
    let admin = response.admin.as_ref().expect("admin");
    assert_eq!(&admin.email, email);

    let conn = db.connect().await;
    assert_eq!(humans(&conn).await, 1, "exactly one admin");
    let stored = strings(&conn, "SELECT email FROM users WHERE kind = 'human'", 1).await;
    assert_eq!(&stored[0][0], email);
    assert_eq!(user_tokens(&conn).await, 1);
    assert_eq!(
        install_status(&server).await.state(),
        InstallTokenState::Consumed
    );
    let verified = verify_as(&server, &scheduler_secret(), &response.admin_token)
        .await
        .expect("the winner's token verifies");
    assert_eq!(verified.subject, admin.subject);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumes_make_one_admin_sqlite() {
    consume_race(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumes_make_one_admin_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    consume_race(db).await;
}
