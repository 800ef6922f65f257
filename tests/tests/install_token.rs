//! The first-admin install token (SPEC §2.3, issue 3), end to end through the
//! real `tessera` binary on SQLite and PostgreSQL: the boot banner and what
//! is stored, status transitions, trading the token for the first admin,
//! wrong and replayed tokens, the consume and boot races, regeneration while
//! a server runs, throttling, the operator CLI, and that a service principal
//! can never obtain a user access token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tessera_client::Client;
use tessera_client::pb::{self, InstallTokenState, PrincipalKind};
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::{Code, Status};
use tessera_tests::{
    ServerOptions, TestDatabase, TestServer, assert_status, now_seconds, run_tessera, seconds,
    service_secret,
};
use tokio::sync::Barrier;
use tonic_types::StatusExt;

const SERVICE: &str = "SCHEDULER";
/// The grep-friendly banner line is this prefix followed by the token.
const BANNER_PREFIX: &str = "INSTALL TOKEN: ";
/// Log message of the boot-time minting event.
const MINTED_EVENT: &str = "install token minted";
const ADMIN_EMAIL: &str = "ada@example.com";
const ADMIN_NAME: &str = "Ada Lovelace";
const USER_TOKEN_PREFIX: &str = "tsr_usr_";

fn secret() -> String {
    service_secret("scheduler")
}

/// A server on `db` with the SCHEDULER service and extra environment.
async fn start(db: &TestDatabase, env: &[(&str, &str)]) -> TestServer {
    let options = ServerOptions::new().service(SERVICE, &secret()).envs(env);
    TestServer::start(db, options).await
}

/// Lines of `stdout` that mention the install token banner at all.
fn banner_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| line.contains("INSTALL TOKEN"))
        .collect()
}

/// The token of the one `INSTALL TOKEN: ` line in `stdout`.
#[track_caller]
fn token_in_banner(stdout: &str) -> String {
    let lines = banner_lines(stdout);
    assert_eq!(lines.len(), 1, "exactly one banner line; stdout:\n{stdout}");
    let token = lines[0]
        .strip_prefix(BANNER_PREFIX)
        .unwrap_or_else(|| panic!("the line starts with {BANNER_PREFIX:?}: {:?}", lines[0]));
    assert_eq!(
        token::parse(token),
        Ok(TokenKind::Install),
        "banner shows a well-formed tsr_ins_ token: {token:?}"
    );
    token.to_owned()
}

/// Waits (at most 10 s) for the boot banner and returns its token. The
/// banner is printed before the server reports SERVING, but stdout is read
/// by another thread.
async fn boot_token(server: &TestServer) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while banner_lines(&server.stdout()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token_in_banner(&server.stdout())
}

/// Asserts that no banner was printed (after letting stdout settle).
async fn assert_no_banner(server: &TestServer) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stdout = server.stdout();
    assert!(
        banner_lines(&stdout).is_empty(),
        "no install token banner expected; stdout:\n{stdout}"
    );
    assert!(
        minted_events(&server.stderr()).is_empty(),
        "no minting event expected; stderr:\n{}",
        server.stderr()
    );
}

/// The JSON log events whose message starts with "install token minted".
fn minted_events(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            event
                .pointer("/fields/message")
                .and_then(|m| m.as_str())
                .is_some_and(|m| m.starts_with(MINTED_EVENT))
        })
        .collect()
}

/// Asserts that no 12-character run of the token's random part occurs in
/// `text`: catches the token, and any fragment of it, in logs.
#[track_caller]
fn assert_no_fragment(text: &str, secret: &str, what: &str) {
    let body = secret
        .split_once('_')
        .and_then(|(_, rest)| rest.split_once('_'))
        .map_or(secret, |(_, body)| body);
    assert!(body.len() >= 12, "token body too short to check");
    for start in 0..=body.len() - 12 {
        let fragment = &body[start..start + 12];
        assert!(
            !text.contains(fragment),
            "a fragment of a secret ({fragment}) appears in {what}:\n{text}"
        );
    }
}

/// GetInstallTokenStatus without credentials.
async fn status(server: &TestServer) -> pb::GetInstallTokenStatusResponse {
    let mut client = server.client(None).await;
    client
        .get_install_token_status(pb::GetInstallTokenStatusRequest {})
        .await
        .expect("GetInstallTokenStatus")
        .into_inner()
}

async fn consume_as(
    client: &mut Client,
    install_token: &str,
    email: &str,
    name: &str,
) -> Result<pb::ConsumeInstallTokenResponse, Status> {
    let request = pb::ConsumeInstallTokenRequest {
        install_token: install_token.to_owned(),
        admin_email: email.to_owned(),
        admin_name: name.to_owned(),
    };
    Ok(client.consume_install_token(request).await?.into_inner())
}

/// ConsumeInstallToken without credentials, for Ada.
async fn consume(
    server: &TestServer,
    install_token: &str,
) -> Result<pb::ConsumeInstallTokenResponse, Status> {
    let mut client = server.client(None).await;
    consume_as(&mut client, install_token, ADMIN_EMAIL, ADMIN_NAME).await
}

async fn issue(client: &mut Client, force: bool) -> Result<pb::IssueInstallTokenResponse, Status> {
    let request = pb::IssueInstallTokenRequest { force };
    Ok(client.issue_install_token(request).await?.into_inner())
}

/// VerifyBearer of `token`, called with `caller` as bearer.
async fn verify(server: &TestServer, caller: &str, token: &str) -> Result<pb::Principal, Status> {
    let mut client = server.client(Some(caller)).await;
    let request = pb::VerifyBearerRequest {
        token: token.to_owned(),
    };
    let response = client.verify_bearer(request).await?.into_inner();
    Ok(response.principal.expect("principal"))
}

async fn mint_ticket(client: &mut Client, user_id: &str) -> Result<String, Status> {
    let request = pb::MintTicketRequest {
        user_id: user_id.to_owned(),
        provider: "github".to_owned(),
        purpose: String::new(),
        ttl_seconds: 0,
    };
    Ok(client.mint_ticket(request).await?.into_inner().ticket)
}

async fn consume_ticket(client: &mut Client, ticket: &str) -> Result<pb::TicketIdentity, Status> {
    let request = pb::ConsumeTicketRequest {
        ticket: ticket.to_owned(),
        purpose: String::new(),
    };
    let response = client.consume_ticket(request).await?.into_inner();
    Ok(response.identity.expect("identity"))
}

/// `tessera <args>` with `DATABASE_URL=url`, bounded to 30 s.
async fn cli(args: &[&str], url: Option<&str>) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let url = url.map(str::to_owned);
    let run = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match &url {
            Some(url) => run_tessera(&args, &[("DATABASE_URL", url)]),
            None => run_tessera(&args, &[]),
        }
    });
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the tessera command finishes within 30 s")
        .expect("run tessera")
}

/// `tessera install-token status` on `url`: its `state:` value.
async fn cli_state(url: &str) -> String {
    let out = cli(&["install-token", "status"], Some(url)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "install-token status failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let states: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("state: "))
        .collect();
    assert_eq!(states.len(), 1, "one state line:\n{stdout}");
    states[0].trim().to_owned()
}

async fn query(conn: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

async fn count(conn: &DatabaseConnection, sql: &str) -> i64 {
    let rows = query(conn, sql).await;
    rows[0].try_get_by_index::<i64>(0).expect("a count")
}

async fn humans(conn: &DatabaseConnection) -> i64 {
    count(conn, "SELECT COUNT(*) FROM users WHERE kind = 'human'").await
}

async fn user_tokens(conn: &DatabaseConnection) -> i64 {
    count(conn, "SELECT COUNT(*) FROM user_tokens").await
}

/// `(hash, consumed_at)` of every row of `install_token`.
async fn install_rows(conn: &DatabaseConnection) -> Vec<(String, Option<i64>)> {
    query(conn, "SELECT hash, consumed_at FROM install_token")
        .await
        .iter()
        .map(|row| {
            (
                row.try_get_by_index::<String>(0).expect("hash"),
                row.try_get_by_index::<Option<i64>>(1).expect("consumed_at"),
            )
        })
        .collect()
}

/// Every audit row as `[actor, action, resource, outcome, credential_id, peer]`.
async fn audit_rows(conn: &DatabaseConnection) -> Vec<Vec<String>> {
    query(
        conn,
        "SELECT actor, action, resource, outcome, credential_id, peer FROM audit_log ORDER BY id",
    )
    .await
    .iter()
    .map(|row| {
        (0..6)
            .map(|i| row.try_get_by_index::<String>(i).expect("audit column"))
            .collect()
    })
    .collect()
}

#[track_caller]
fn assert_not_in_audit(rows: &[Vec<String>], secrets: &[&str]) {
    for row in rows {
        for value in row {
            for secret in secrets {
                assert!(!value.contains(secret), "a secret in audit row {row:?}");
            }
        }
    }
}

#[tokio::test]
async fn first_boot_prints_the_banner_once_and_restarts_do_not() {
    let db = TestDatabase::sqlite();
    let mut server = start(&db, &[]).await;
    let token = boot_token(&server).await;

    // On stdout the token appears only in the banner line.
    let stdout = server.stdout();
    let with_token: Vec<&str> = stdout.lines().filter(|l| l.contains(&token)).collect();
    assert_eq!(with_token, vec![format!("{BANNER_PREFIX}{token}")]);
    // The logs record the event and its credential id, never the token.
    let stderr = server.stderr();
    assert_no_fragment(&stderr, &token, "the logs");
    let events = minted_events(&stderr);
    assert_eq!(events.len(), 1, "one minting event:\n{stderr}");
    assert_eq!(
        events[0]
            .pointer("/fields/credential_id")
            .and_then(|v| v.as_str()),
        Some(token::credential_id("ins", &token).as_str()),
        "the event names the credential id: {}",
        events[0]
    );

    // Only the SHA-256 is stored.
    let conn = db.connect().await;
    let rows = install_rows(&conn).await;
    assert_eq!(rows, vec![(token::sha256_hex(&token), None)]);
    let hash = &rows[0].0;
    assert_eq!(hash.len(), 64);
    assert!(
        hash.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    );
    let audit = audit_rows(&conn).await;
    assert!(
        audit
            .iter()
            .any(|r| r[1] == "install_token.issue" && r[3] == "ok"),
        "minting is audited: {audit:?}"
    );
    assert_not_in_audit(&audit, &[&token]);
    let issued_at = status(&server).await.issued_at;

    // A restart with the token pending prints nothing and keeps it.
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(15)).await.success());
    drop(server);
    let mut server = start(&db, &[]).await;
    assert_no_banner(&server).await;
    let after = status(&server).await;
    assert_eq!(after.state(), InstallTokenState::Pending);
    assert_eq!(after.issued_at, issued_at, "the same token is on file");
    assert_eq!(install_rows(&conn).await.len(), 1);

    // The token minted by the previous process still works.
    consume(&server, &token)
        .await
        .expect("the pending token survives a restart");
    assert_no_fragment(&server.stderr(), &token, "the logs after restart");

    // A consumed token is never minted again at boot.
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(15)).await.success());
    drop(server);
    let server = start(&db, &[]).await;
    assert_no_banner(&server).await;
    assert_eq!(status(&server).await.state(), InstallTokenState::Consumed);
}

async fn status_transitions(db: TestDatabase) {
    let before = now_seconds();
    let server = start(&db, &[]).await;
    let token = boot_token(&server).await;

    let pending = status(&server).await;
    assert_eq!(pending.state(), InstallTokenState::Pending);
    let issued = seconds!(pending.issued_at);
    assert!(
        issued >= before - 1.0 && issued <= now_seconds() + 1.0,
        "issued_at {issued} is the boot time (started at {before})"
    );
    assert!(pending.consumed_at.is_none(), "{pending:?}");
    assert_eq!(cli_state(db.url()).await, "PENDING");

    let admin = consume(&server, &token).await.expect("consume");
    assert_eq!(
        admin.admin.as_ref().map(|p| p.email.as_str()),
        Some(ADMIN_EMAIL)
    );

    let consumed = status(&server).await;
    assert_eq!(consumed.state(), InstallTokenState::Consumed);
    assert_eq!(consumed.issued_at, pending.issued_at);
    let consumed_at = seconds!(consumed.consumed_at);
    assert!(
        consumed_at >= issued && consumed_at <= now_seconds() + 1.0,
        "consumed_at {consumed_at} after issued_at {issued}"
    );
    assert_eq!(cli_state(db.url()).await, "CONSUMED");
    let conn = db.connect().await;
    let rows = install_rows(&conn).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1.is_some(), "consumed_at stored");
}

#[tokio::test]
async fn status_moves_from_pending_to_consumed_sqlite() {
    status_transitions(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn status_moves_from_pending_to_consumed_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    status_transitions(db).await;
}

/// A database where a human user exists before the first boot (inserted
/// directly): nothing is minted, and the state stays NOT_ISSUED.
#[tokio::test]
async fn not_issued_when_a_human_exists_before_first_boot() {
    let db = TestDatabase::sqlite();
    let out = run_tessera(&["migrate"], &[("DATABASE_URL", db.url())]);
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cli_state(db.url()).await, "NOT_ISSUED");
    let conn = db.connect().await;
    conn.execute_unprepared(
        "INSERT INTO users (id, email, display_name, kind, created_at) \
         VALUES ('preexisting', 'grace@example.com', 'Grace', 'human', 0)",
    )
    .await
    .expect("insert a human user");

    let server = start(&db, &[]).await;
    assert_no_banner(&server).await;
    let state = status(&server).await;
    assert_eq!(state.state(), InstallTokenState::NotIssued);
    assert!(state.issued_at.is_none() && state.consumed_at.is_none());
    assert_eq!(cli_state(db.url()).await, "NOT_ISSUED");
    assert!(install_rows(&conn).await.is_empty());

    // force=false mints nothing once a human exists.
    let mut service = server.client(Some(&secret())).await;
    let response = issue(&mut service, false).await.expect("issue");
    assert!(response.install_token.is_none());
    assert_eq!(response.state(), InstallTokenState::NotIssued);
    assert!(install_rows(&conn).await.is_empty());

    // Any install token is refused now, and none can be forced: it could
    // never be used.
    let unknown = token::generate(TokenKind::Install);
    let err = consume(&server, unknown.expose())
        .await
        .expect_err("a human exists");
    assert_status(&err, Code::FailedPrecondition, None);
    let err = issue(&mut service, true)
        .await
        .expect_err("force after a human exists");
    assert_status(&err, Code::FailedPrecondition, None);
    assert!(install_rows(&conn).await.is_empty());
    assert_eq!(humans(&conn).await, 1);
    assert_eq!(user_tokens(&conn).await, 0);
}

async fn consume_makes_an_admin(db: TestDatabase) {
    let server = start(&db, &[]).await;
    let token = boot_token(&server).await;
    let response = consume(&server, &token).await.expect("consume");

    let admin_token = response.admin_token.clone();
    assert_eq!(token::parse(&admin_token), Ok(TokenKind::UserAccess));
    let admin = response.admin.expect("admin principal");
    assert_eq!(admin.kind(), PrincipalKind::User);
    assert_eq!(admin.email, ADMIN_EMAIL);
    assert_eq!(admin.display_name, ADMIN_NAME);
    assert_eq!(admin.groups, vec!["Admin".to_owned()]);
    assert!(!admin.subject.is_empty());
    assert_eq!(
        admin.credential_id,
        token::credential_id("usr", &admin_token)
    );

    // VerifyBearer resolves the admin token to the same USER, in Admin.
    let verified = verify(&server, &secret(), &admin_token)
        .await
        .expect("the admin token verifies");
    assert_eq!(verified.kind(), PrincipalKind::User);
    assert_eq!(verified.subject, admin.subject);
    assert_eq!(verified.email, ADMIN_EMAIL);
    assert_eq!(verified.groups, vec!["Admin".to_owned()]);
    assert_eq!(verified.credential_id, admin.credential_id);

    // Stored: one human, one hashed access token for it.
    let conn = db.connect().await;
    assert_eq!(humans(&conn).await, 1);
    let tokens = query(&conn, "SELECT hash, user_id FROM user_tokens").await;
    assert_eq!(tokens.len(), 1);
    let hash: String = tokens[0].try_get_by_index(0).expect("hash");
    let user_id: String = tokens[0].try_get_by_index(1).expect("user_id");
    assert_eq!(hash, token::sha256_hex(&admin_token));
    assert_eq!(user_id, admin.subject);

    // The admin may mint tickets for itself only.
    let mut as_admin = server.client(Some(&admin_token)).await;
    let mut service = server.client(Some(&secret())).await;
    let own = mint_ticket(&mut as_admin, &admin.subject)
        .await
        .expect("a USER mints for its own user_id");
    let identity = consume_ticket(&mut service, &own).await.expect("consume");
    assert_eq!(identity.user_id, admin.subject);
    let err = mint_ticket(&mut as_admin, "someone-else")
        .await
        .expect_err("not for another user");
    assert_status(&err, Code::PermissionDenied, None);

    // SERVICE-only RPCs are refused to the admin; the refusal consumes nothing.
    let ticket = mint_ticket(&mut as_admin, &admin.subject)
        .await
        .expect("mint");
    let err = consume_ticket(&mut as_admin, &ticket)
        .await
        .expect_err("ConsumeTicket is for services");
    assert_status(&err, Code::PermissionDenied, None);
    consume_ticket(&mut service, &ticket)
        .await
        .expect("the refused call did not consume the ticket");
    let err = verify(&server, &admin_token, &admin_token)
        .await
        .expect_err("VerifyBearer is for services");
    assert_status(&err, Code::PermissionDenied, None);
    let err = as_admin
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await
        .expect_err("GetInternalCredential is for services");
    assert_status(&err, Code::PermissionDenied, None);

    // The admin is in Admin: it may call IssueInstallToken.
    let response = issue(&mut as_admin, false).await.expect("issue as admin");
    assert!(response.install_token.is_none(), "nothing minted");
    assert_eq!(response.state(), InstallTokenState::Consumed);
    let err = issue(&mut as_admin, true)
        .await
        .expect_err("no token can be forced once the first admin exists");
    assert_status(&err, Code::FailedPrecondition, None);
    assert_eq!(status(&server).await.state(), InstallTokenState::Consumed);
    assert_eq!(humans(&conn).await, 1);
    assert_eq!(user_tokens(&conn).await, 1);

    let audit = audit_rows(&conn).await;
    assert!(
        audit
            .iter()
            .any(|r| r[1] == "install_token.consume" && r[3] == "ok"),
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

#[tokio::test]
async fn wrong_malformed_and_replayed_tokens() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[]).await;
    let token = boot_token(&server).await;
    let conn = db.connect().await;
    let mut anonymous = server.client(None).await;

    // Wrong and malformed tokens are UNAUTHENTICATED.
    let wrong = token::generate(TokenKind::Install);
    let user_token = token::generate(TokenKind::UserAccess);
    let mut changed: Vec<char> = token.chars().collect();
    let last = changed.len() - 1;
    changed[last] = if changed[last] == 'a' { 'b' } else { 'a' };
    let changed: String = changed.into_iter().collect();
    let swapped = token.replacen("tsr_ins_", "tsr_usr_", 1);
    let service = secret();
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
        let err = consume_as(&mut anonymous, bad, ADMIN_EMAIL, ADMIN_NAME)
            .await
            .expect_err("refused");
        assert_status(&err, Code::Unauthenticated, None);
    }

    // Invalid admin details with the right token: INVALID_ARGUMENT.
    let long_email = format!("{}@example.com", "a".repeat(300));
    for (email, name) in [
        ("", ADMIN_NAME),
        ("not-an-email", ADMIN_NAME),
        ("a@b", ADMIN_NAME),
        ("@example.com", ADMIN_NAME),
        ("ad a@example.com", ADMIN_NAME),
        ("scheduler@system.local", ADMIN_NAME),
        ("someone@SYSTEM.LOCAL", ADMIN_NAME),
        (long_email.as_str(), ADMIN_NAME),
        (ADMIN_EMAIL, &"n".repeat(300)),
        (ADMIN_EMAIL, "bell\u{7}"),
    ] {
        let err = consume_as(&mut anonymous, &token, email, name)
            .await
            .expect_err("invalid admin details");
        assert_status(&err, Code::InvalidArgument, None);
    }

    // None of that used the token up.
    assert_eq!(status(&server).await.state(), InstallTokenState::Pending);
    assert_eq!(humans(&conn).await, 0);
    assert_eq!(user_tokens(&conn).await, 0);
    let admin = consume_as(&mut anonymous, &token, ADMIN_EMAIL, ADMIN_NAME)
        .await
        .expect("the token still works");
    assert!(admin.admin_token.starts_with(USER_TOKEN_PREFIX));

    // Replays fail, whatever the e-mail.
    for email in [ADMIN_EMAIL, "eve@example.com"] {
        let err = consume_as(&mut anonymous, &token, email, "Eve")
            .await
            .expect_err("replay");
        assert_status(&err, Code::FailedPrecondition, None);
    }
    assert_eq!(humans(&conn).await, 1);
    assert_eq!(user_tokens(&conn).await, 1);

    let audit = audit_rows(&conn).await;
    let consumes: Vec<&Vec<String>> = audit
        .iter()
        .filter(|r| r[1] == "install_token.consume")
        .collect();
    assert_eq!(consumes.iter().filter(|r| r[3] == "ok").count(), 1);
    assert!(consumes.iter().any(|r| r[3] != "ok"), "failures audited");
    assert_not_in_audit(
        &audit,
        &[&token, wrong.expose(), &changed, &admin.admin_token],
    );
    assert_no_fragment(&server.stderr(), &token, "the logs");
}

async fn consume_race(db: TestDatabase) {
    const N: usize = 16;
    let server = start(&db, &[]).await;
    let token = boot_token(&server).await;
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(server.client(None).await);
    }
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let (barrier, token) = (barrier.clone(), token.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let email = format!("admin{i}@example.com");
                let result = consume_as(&mut client, &token, &email, "Racer").await;
                (email, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (email, result) = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("consume finishes")
            .expect("task");
        match result {
            Ok(response) => winners.push((email, response)),
            Err(status) => assert!(
                matches!(
                    status.code(),
                    Code::FailedPrecondition | Code::Unauthenticated
                ),
                "a loser gets FAILED_PRECONDITION or UNAUTHENTICATED, not {status:?}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one consume succeeds");
    let (email, response) = &winners[0];
    let admin = response.admin.as_ref().expect("admin");
    assert_eq!(&admin.email, email);

    let conn = db.connect().await;
    assert_eq!(humans(&conn).await, 1, "exactly one admin");
    let stored = query(&conn, "SELECT email FROM users WHERE kind = 'human'").await;
    let stored: String = stored[0].try_get_by_index(0).expect("email");
    assert_eq!(&stored, email);
    assert_eq!(user_tokens(&conn).await, 1);
    assert_eq!(status(&server).await.state(), InstallTokenState::Consumed);
    let verified = verify(&server, &secret(), &response.admin_token)
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

/// Three replicas boot at once on one PostgreSQL database. On a fresh
/// database the migration race spreads them out; on a migrated one they
/// reach the minting step together.
async fn boot_race(db: TestDatabase) {
    const REPLICAS: usize = 3;
    let db = Arc::new(db);
    let starts: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { start(&db, &[]).await })
        })
        .collect();
    let mut servers = Vec::new();
    for started in starts {
        servers.push(started.await.expect("replica starts"));
    }

    let all_stdout = |servers: &[TestServer]| -> String {
        servers.iter().map(TestServer::stdout).collect::<String>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while banner_lines(&all_stdout(&servers)).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let token = token_in_banner(&all_stdout(&servers));
    let printer = servers
        .iter()
        .position(|s| s.stdout().contains(&token))
        .expect("one replica printed it");

    let mut events = 0;
    for server in &servers {
        let stderr = server.stderr();
        events += minted_events(&stderr).len();
        assert!(
            !stderr.contains("could not mint"),
            "a replica failed to mint:\n{stderr}"
        );
        assert_no_fragment(&stderr, &token, "a replica's logs");
    }
    assert_eq!(events, 1, "one minting event across the replicas");
    let conn = db.connect().await;
    assert_eq!(
        install_rows(&conn).await,
        vec![(token::sha256_hex(&token), None)]
    );

    // Any replica accepts it, and all see it consumed.
    let other = &servers[(printer + 1) % REPLICAS];
    consume(other, &token)
        .await
        .expect("consume on another replica");
    for server in &servers {
        assert_eq!(status(server).await.state(), InstallTokenState::Consumed);
    }
    assert_eq!(humans(&conn).await, 1);
    drop(servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_booting_together_on_a_fresh_database_mint_one_token_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    boot_race(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_booting_together_on_a_migrated_database_mint_one_token_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let out = cli(&["migrate"], Some(db.url())).await;
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    boot_race(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regenerate_while_the_server_runs_replaces_the_token() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[]).await;
    let first = boot_token(&server).await;
    let boot_status = status(&server).await;
    let issued_first = seconds!(boot_status.issued_at);
    let conn = db.connect().await;

    // The CLI writes to the SQLite file while the server writes too (every
    // VerifyBearer is audited).
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, mut client) = (stop.clone(), server.client(Some(&secret())).await);
        tokio::spawn(async move {
            let mut calls = 0;
            while !stop.load(Ordering::Relaxed) && calls < 5_000 {
                let request = pb::VerifyBearerRequest { token: secret() };
                client
                    .verify_bearer(request)
                    .await
                    .expect("the server keeps working while the CLI writes");
                calls += 1;
            }
            calls
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = cli(&["install-token", "regenerate"], Some(db.url())).await;
    stop.store(true, Ordering::Relaxed);
    let calls = load.await.expect("load task");
    assert!(calls > 0);
    let cli_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let cli_stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "regenerate failed: {cli_stderr}");
    let second = token_in_banner(&cli_stdout);
    assert_ne!(second, first);
    // The same banner as at boot, with the new token.
    let boot_banner = server.stdout().replace(&first, "<TOKEN>");
    let cli_banner = cli_stdout.replace(&second, "<TOKEN>");
    assert!(
        boot_banner.contains(cli_banner.trim_end()),
        "the CLI prints the boot banner:\n{cli_stdout}\nvs\n{}",
        server.stdout()
    );
    assert_no_fragment(&cli_stderr, &second, "the CLI's logs");

    assert_eq!(
        install_rows(&conn).await,
        vec![(token::sha256_hex(&second), None)]
    );
    let pending = status(&server).await;
    assert_eq!(pending.state(), InstallTokenState::Pending);
    assert!(seconds!(pending.issued_at) >= issued_first);
    let err = consume(&server, &first)
        .await
        .expect_err("the old token stops working");
    assert_status(&err, Code::Unauthenticated, None);

    // IssueInstallToken needs an Admin caller.
    let mut anonymous = server.client(None).await;
    let err = issue(&mut anonymous, true)
        .await
        .expect_err("no caller credentials");
    assert_status(&err, Code::Unauthenticated, None);
    let mut with_install_token = server.client(Some(&second)).await;
    let err = issue(&mut with_install_token, true)
        .await
        .expect_err("an install token is not a bearer");
    assert_status(&err, Code::Unauthenticated, None);
    assert_eq!(
        install_rows(&conn).await,
        vec![(token::sha256_hex(&second), None)]
    );

    // force=false while one is pending: nothing minted, still pending.
    let mut service = server.client(Some(&secret())).await;
    let response = issue(&mut service, false).await.expect("issue");
    assert!(response.install_token.is_none(), "nothing minted");
    assert_eq!(response.state(), InstallTokenState::Pending);
    assert_eq!(response.issued_at, pending.issued_at);
    assert_eq!(
        install_rows(&conn).await,
        vec![(token::sha256_hex(&second), None)]
    );

    // force=true replaces it the same way; a service caller does not get the
    // token back, the server prints it for the operator instead.
    let forced = issue(&mut service, true).await.expect("force");
    assert_eq!(forced.state(), InstallTokenState::Pending);
    assert!(
        forced.install_token.is_none(),
        "never returned to a service"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while banner_lines(&server.stdout()).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let printed = server.stdout();
    let third = banner_lines(&printed)
        .last()
        .and_then(|line| line.strip_prefix(BANNER_PREFIX))
        .expect("a second banner")
        .to_owned();
    assert_eq!(token::parse(&third), Ok(TokenKind::Install));
    assert_ne!(third, second);
    for old in [&first, &second] {
        let err = consume(&server, old)
            .await
            .expect_err("replaced tokens stop working");
        assert_status(&err, Code::Unauthenticated, None);
    }
    let admin = consume(&server, &third).await.expect("the new token works");
    assert_eq!(humans(&conn).await, 1);

    let audit = audit_rows(&conn).await;
    let issues: Vec<&Vec<String>> = audit
        .iter()
        .filter(|r| r[1] == "install_token.issue" && r[3] == "ok")
        .collect();
    assert_eq!(
        issues.len(),
        3,
        "boot, CLI and RPC issues audited: {audit:?}"
    );
    assert!(issues.iter().any(|r| r[0] == "operator-cli"), "{issues:?}");
    assert_not_in_audit(&audit, &[&first, &second, &third, &admin.admin_token]);
    let stderr = server.stderr();
    for secret in [&first, &second, &third, &admin.admin_token] {
        assert_no_fragment(&stderr, secret, "the server's logs");
    }
    assert!(
        !server.stdout().contains(&second),
        "the server does not print the token the CLI minted"
    );
}

/// Collects every string of a response, for the `tsr_usr_` check below
/// (Debug of secret-bearing messages is redacted, so fields are read).
fn principal_strings(principal: Option<&pb::Principal>) -> Vec<String> {
    principal.map_or_else(Vec::new, |p| {
        let mut all = vec![
            p.subject.clone(),
            p.email.clone(),
            p.display_name.clone(),
            p.credential_id.clone(),
        ];
        all.extend(p.groups.iter().cloned());
        all
    })
}

/// Records the strings of `result` (the message of an error too).
fn record<T>(
    seen: &mut Vec<(&'static str, String)>,
    rpc: &'static str,
    result: &Result<T, Status>,
    strings: impl Fn(&T) -> Vec<String>,
) {
    match result {
        Ok(response) => seen.extend(strings(response).into_iter().map(|s| (rpc, s))),
        Err(status) => seen.push((rpc, status.message().to_owned())),
    }
}

/// Seed 001's bug: a service secret must not lead to a user access token.
/// Every RPC is called with the service secret as caller (and with what it
/// yields), and nothing returned is a `tsr_usr_` token.
#[tokio::test]
async fn service_principals_never_obtain_a_user_access_token() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[]).await;
    let install_token = boot_token(&server).await;
    let secret = secret();
    let mut service = server.client(Some(&secret)).await;
    let mut seen: Vec<(&'static str, String)> = Vec::new();

    let verified = verify(&server, &secret, &secret).await;
    record(&mut seen, "VerifyBearer", &verified, |p| {
        principal_strings(Some(p))
    });
    assert_eq!(verified.expect("verify").kind(), PrincipalKind::Service);
    // An install token is not a bearer, in either position.
    let err = verify(&server, &secret, &install_token)
        .await
        .expect_err("install token as token");
    assert_status(&err, Code::Unauthenticated, None);
    let err = verify(&server, &install_token, &secret)
        .await
        .expect_err("install token as caller");
    assert_status(&err, Code::Unauthenticated, None);

    let ticket = mint_ticket(&mut service, "u-1").await;
    record(&mut seen, "MintTicket", &ticket, |t| vec![t.clone()]);
    let ticket = ticket.expect("mint");
    let identity = consume_ticket(&mut service, &ticket).await;
    record(&mut seen, "ConsumeTicket", &identity, |i| {
        vec![i.user_id.clone(), i.provider.clone()]
    });
    let internal = service
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await
        .map(|r| r.into_inner().credential);
    record(&mut seen, "GetInternalCredential", &internal, |c| {
        vec![c.clone()]
    });
    let internal = internal.expect("internal credential");

    for force in [false, true] {
        let issued = issue(&mut service, force).await;
        record(&mut seen, "IssueInstallToken", &issued, |r| {
            r.install_token.iter().cloned().collect()
        });
        let issued = issued.expect("a service is in Admin");
        assert!(
            issued.install_token.is_none(),
            "a service never receives an install token (force={force})"
        );
    }
    // The forced token went to the server's standard output instead, for
    // the operator: a second banner after the boot one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while banner_lines(&server.stdout()).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        banner_lines(&server.stdout()).len(),
        2,
        "boot and forced banners"
    );
    let state = service
        .get_install_token_status(pb::GetInstallTokenStatusRequest {})
        .await;
    assert_eq!(
        state.expect("status").into_inner().state(),
        InstallTokenState::Pending
    );

    // ConsumeInstallToken with what a service holds instead of an install token.
    for (what, presented) in [
        ("service secret", secret.as_str()),
        ("ticket", ticket.as_str()),
        ("internal credential", internal.as_str()),
    ] {
        let consumed = consume_as(&mut service, presented, "svc-admin@example.com", "Svc").await;
        record(&mut seen, "ConsumeInstallToken", &consumed, |r| {
            let mut all = principal_strings(r.admin.as_ref());
            all.push(r.admin_token.clone());
            all
        });
        let err = consumed.expect_err(what);
        assert_status(&err, Code::Unauthenticated, None);
    }

    // Workspaces (whatever their implementation state): follow every
    // credential they hand out.
    let provisioned = service
        .provision_workspace(pb::ProvisionWorkspaceRequest {
            workspace_id: "ws-escalation".to_owned(),
            name: "Escalation".to_owned(),
        })
        .await
        .map(tessera_client::tonic::Response::into_inner);
    record(&mut seen, "ProvisionWorkspace", &provisioned, |r| {
        vec![
            r.workspace_id.clone(),
            r.registration_token.clone(),
            r.platform_inbound_secret.clone(),
        ]
    });
    let mut registrants = vec![secret.clone()];
    if let Ok(provisioned) = &provisioned {
        registrants.push(provisioned.registration_token.clone());
    }
    let mut auth_tokens = Vec::new();
    for bearer in &registrants {
        let mut client = server.client(Some(bearer)).await;
        let registered = client
            .register_workspace(pb::RegisterWorkspaceRequest {
                workspace_id: "ws-escalation".to_owned(),
                reissue_auth_token: false,
            })
            .await
            .map(tessera_client::tonic::Response::into_inner);
        record(&mut seen, "RegisterWorkspace", &registered, |r| {
            r.auth_token
                .iter()
                .chain(r.platform_inbound_secret.iter())
                .cloned()
                .collect()
        });
        if let Ok(registered) = registered {
            auth_tokens.extend(registered.auth_token);
        }
    }
    let inbound = service
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: "ws-escalation".to_owned(),
        })
        .await
        .map(tessera_client::tonic::Response::into_inner);
    record(&mut seen, "GetInboundSecret", &inbound, |r| {
        r.platform_inbound_secret.iter().cloned().collect()
    });

    // What the service obtained, used as caller, yields no user token either.
    let mut derived = vec![internal.clone(), ticket.clone()];
    derived.extend(auth_tokens);
    for bearer in &derived {
        let mut client = server.client(Some(bearer)).await;
        let minted = mint_ticket(&mut client, "u-1").await;
        record(&mut seen, "MintTicket (derived)", &minted, |t| {
            vec![t.clone()]
        });
        let issued = issue(&mut client, true).await;
        record(&mut seen, "IssueInstallToken (derived)", &issued, |r| {
            r.install_token.iter().cloned().collect()
        });
        let verified = verify(&server, &secret, bearer).await;
        record(&mut seen, "VerifyBearer (derived)", &verified, |p| {
            principal_strings(Some(p))
        });
        if let Ok(principal) = &verified {
            assert_ne!(principal.kind(), PrincipalKind::User, "{principal:?}");
        }
    }

    for (rpc, value) in &seen {
        assert!(
            !value.contains(USER_TOKEN_PREFIX),
            "{rpc} returned a user access token"
        );
    }
    let conn = db.connect().await;
    assert_eq!(user_tokens(&conn).await, 0, "no user access token exists");
    assert_eq!(humans(&conn).await, 0, "no human user exists");
}

#[tokio::test]
async fn anonymous_calls_are_throttled_per_peer() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "3")]).await;
    let token = boot_token(&server).await;
    let mut anonymous = server.client(None).await;
    for _ in 0..3 {
        anonymous
            .get_install_token_status(pb::GetInstallTokenStatusRequest {})
            .await
            .expect("within the budget");
    }
    let err = anonymous
        .get_install_token_status(pb::GetInstallTokenStatusRequest {})
        .await
        .expect_err("the fourth call in a minute");
    assert_status(&err, Code::ResourceExhausted, None);
    let retry = err
        .get_error_details()
        .retry_info()
        .cloned()
        .expect("RetryInfo detail");
    let delay = retry.retry_delay.expect("retry delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(60),
        "retry delay {delay:?}"
    );

    // The budget is per peer, not per connection, and covers
    // ConsumeInstallToken: a throttled consume does not use the token.
    let mut again = server.client(None).await;
    let err = consume_as(&mut again, &token, ADMIN_EMAIL, ADMIN_NAME)
        .await
        .expect_err("throttled");
    assert_status(&err, Code::ResourceExhausted, None);
    let conn = db.connect().await;
    assert_eq!(
        install_rows(&conn).await,
        vec![(token::sha256_hex(&token), None)]
    );
    assert_eq!(humans(&conn).await, 0);

    // Authenticated RPCs are not spent from the anonymous budget.
    for _ in 0..5 {
        verify(&server, &secret(), &secret())
            .await
            .expect("a service is not throttled");
    }
}

#[tokio::test]
async fn cli_status_gen_secret_and_bad_database_urls() {
    // gen-secret: a fresh tsr_svc_ secret each time, needing no database.
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let out = cli(&["gen-secret"], None).await;
        assert!(
            out.status.success(),
            "gen-secret failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
        let generated = stdout.trim().to_owned();
        assert!(generated.len() >= 32, "{generated:?}");
        assert_eq!(token::parse(&generated), Ok(TokenKind::Service));
        assert_no_fragment(
            &String::from_utf8_lossy(&out.stderr),
            &generated,
            "gen-secret's stderr",
        );
        secrets.push(generated);
    }
    assert_ne!(secrets[0], secrets[1]);

    // status before any server, then while one runs.
    let db = TestDatabase::sqlite();
    assert_eq!(cli_state(db.url()).await, "NOT_ISSUED");

    // The generated secret works as TESSERA_SERVICE_TOKEN_<NAME>.
    let generated = &secrets[0];
    let options = ServerOptions::new().service("GEN", generated);
    let server = TestServer::start(&db, options).await;
    let principal = verify(&server, generated, generated)
        .await
        .expect("the generated secret authenticates");
    assert_eq!(principal.kind(), PrincipalKind::Service);
    assert_eq!(principal.email, "gen@system.local");
    assert_eq!(principal.groups, vec!["Admin".to_owned()]);
    assert_no_fragment(&server.stderr(), generated, "the server's logs");
    assert_eq!(cli_state(db.url()).await, "PENDING");
    let out = cli(&["install-token", "status"], Some(db.url())).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let issued = stdout
        .lines()
        .find_map(|line| line.strip_prefix("issued_at: "))
        .unwrap_or_else(|| panic!("an issued_at line:\n{stdout}"));
    assert!(issued.starts_with("20"), "issued_at is a date: {stdout}");
    assert!(!stdout.contains("tsr_"), "status shows no token: {stdout}");

    // Unreachable or unusable databases: non-zero exit, a clear message.
    let missing_dir = tempfile::tempdir().expect("temporary directory");
    let missing = format!(
        "sqlite:{}",
        missing_dir.path().join("no/such/dir/tessera.db").display()
    );
    for url in ["postgres://postgres@127.0.0.1:1/x", missing.as_str()] {
        for action in ["status", "regenerate"] {
            let out = cli(&["install-token", action], Some(url)).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "install-token {action} on {url} must fail"
            );
            assert!(
                stderr.to_lowercase().contains("database"),
                "install-token {action} on {url}: the error says what failed:\n{stderr}"
            );
            assert!(
                banner_lines(&String::from_utf8_lossy(&out.stdout)).is_empty(),
                "no banner on failure"
            );
        }
    }
}
