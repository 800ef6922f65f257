//! The first-admin install token through the real `tessera` binary on
//! SQLite and PostgreSQL: the boot banner and what is stored, when a token
//! is (not) minted at boot, status transitions, regeneration by the CLI and
//! by IssueInstallToken while a server runs, and the throttle on anonymous
//! calls. Trading it for the first admin: `first_admin.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tessera_client::pb::{self, InstallTokenState};
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Code;
use tessera_tests::audit::{assert_not_in_audit, audit_rows};
use tessera_tests::grpc::{verify_as, verify_bearer};
use tessera_tests::install::{
    ADA_EMAIL, BANNER_PREFIX, banner_lines, boot_token, cli_state, consume_as_ada, humans,
    insert_human, install_rows, install_status, issue_install_token, minted_events,
    token_in_banner, user_tokens, wait_for_banners,
};
use tessera_tests::secrets::assert_no_fragment;
use tessera_tests::{
    TestDatabase, TestServer, assert_status, now_seconds, run_tessera_async, scheduler_secret,
    seconds,
};
use tonic_types::StatusExt;

/// How long a stopped server may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Asserts that no banner was printed (after letting stdout settle) and
/// no minting logged.
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

/// Stops `server` with SIGTERM (exit 0) and starts a new one on `db`.
async fn restart(mut server: TestServer, db: &TestDatabase) -> TestServer {
    server.terminate();
    server.wait_exit_zero(EXIT_TIMEOUT).await;
    drop(server);
    TestServer::start_scheduler(db, &[]).await
}

/// The boot banner of a first start: on stdout the token appears only in
/// the banner line; the logs record the event and its credential id, never
/// the token; only its SHA-256 is stored; minting is audited.
async fn assert_first_banner_and_storage(server: &TestServer, conn: &DatabaseConnection) -> String {
    let token = boot_token(server).await;
    let stdout = server.stdout();
    let with_token: Vec<&str> = stdout.lines().filter(|l| l.contains(&token)).collect();
    assert_eq!(with_token, vec![format!("{BANNER_PREFIX}{token}")]);
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

    let rows = install_rows(conn).await;
    assert_eq!(rows, vec![(token::sha256_hex(&token), None)]);
    let hash = &rows[0].0;
    assert_eq!(hash.len(), 64);
    assert!(
        hash.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    );
    let audit = audit_rows(conn).await;
    assert!(
        audit
            .iter()
            .any(|r| r.action == "install_token.issue" && r.outcome == "ok"),
        "minting is audited: {audit:?}"
    );
    assert_not_in_audit(&audit, &[&token]);
    token
}

#[tokio::test]
async fn first_boot_prints_the_banner_once_and_restarts_do_not() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_scheduler(&db, &[]).await;
    let conn = db.connect().await;
    let token = assert_first_banner_and_storage(&server, &conn).await;
    let issued_at = install_status(&server).await.issued_at;

    // A restart with the token pending prints nothing and keeps it.
    let server = restart(server, &db).await;
    assert_no_banner(&server).await;
    let after = install_status(&server).await;
    assert_eq!(after.state(), InstallTokenState::Pending);
    assert_eq!(after.issued_at, issued_at, "the same token is on file");
    assert_eq!(install_rows(&conn).await.len(), 1);

    // The token minted by the previous process still works.
    consume_as_ada(&server, &token)
        .await
        .expect("the pending token survives a restart");
    assert_no_fragment(&server.stderr(), &token, "the logs after restart");

    // A consumed token is never minted again at boot.
    let server = restart(server, &db).await;
    assert_no_banner(&server).await;
    assert_eq!(
        install_status(&server).await.state(),
        InstallTokenState::Consumed
    );
}

async fn status_transitions(db: TestDatabase) {
    let before = now_seconds();
    let server = TestServer::start_scheduler(&db, &[]).await;
    let token = boot_token(&server).await;

    let pending = install_status(&server).await;
    assert_eq!(pending.state(), InstallTokenState::Pending);
    let issued = seconds!(pending.issued_at);
    assert!(
        issued >= before - 1.0 && issued <= now_seconds() + 1.0,
        "issued_at {issued} is the boot time (started at {before})"
    );
    assert!(pending.consumed_at.is_none(), "{pending:?}");
    assert_eq!(cli_state(db.url()).await, "PENDING");

    let admin = consume_as_ada(&server, &token).await.expect("consume");
    assert_eq!(
        admin.admin.as_ref().map(|p| p.email.as_str()),
        Some(ADA_EMAIL)
    );

    let consumed = install_status(&server).await;
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
    tessera_tests::migrate(db.url());
    assert_eq!(cli_state(db.url()).await, "NOT_ISSUED");
    let conn = db.connect().await;
    insert_human(&conn, "preexisting", "grace@example.com").await;

    let server = TestServer::start_scheduler(&db, &[]).await;
    assert_no_banner(&server).await;
    let state = install_status(&server).await;
    assert_eq!(state.state(), InstallTokenState::NotIssued);
    assert!(state.issued_at.is_none() && state.consumed_at.is_none());
    assert_eq!(cli_state(db.url()).await, "NOT_ISSUED");
    assert!(install_rows(&conn).await.is_empty());

    // force=false mints nothing once a human exists.
    let mut service = server.scheduler().await;
    let response = issue_install_token(&mut service, false)
        .await
        .expect("issue");
    assert!(response.install_token.is_none());
    assert_eq!(response.state(), InstallTokenState::NotIssued);
    assert!(install_rows(&conn).await.is_empty());

    // Any install token is refused now, and none can be forced: it could
    // never be used.
    let unknown = token::generate(TokenKind::Install);
    let err = consume_as_ada(&server, unknown.expose())
        .await
        .expect_err("a human exists");
    assert_status(&err, Code::FailedPrecondition, None);
    let err = issue_install_token(&mut service, true)
        .await
        .expect_err("force after a human exists");
    assert_status(&err, Code::FailedPrecondition, None);
    assert!(install_rows(&conn).await.is_empty());
    assert_eq!(humans(&conn).await, 1);
    assert_eq!(user_tokens(&conn).await, 0);
}

// ---------------------------------------------------------------------------
// Regeneration while a server runs
// ---------------------------------------------------------------------------

/// `tessera install-token regenerate` on the server's SQLite file while the
/// server writes too (every VerifyBearer is audited, and every one must
/// succeed); the CLI's output.
async fn regenerate_under_load(server: &TestServer, url: &str) -> std::process::Output {
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, mut client) = (stop.clone(), server.scheduler().await);
        tokio::spawn(async move {
            let mut calls = 0;
            while !stop.load(Ordering::Relaxed) && calls < 5_000 {
                verify_bearer(&mut client, &scheduler_secret())
                    .await
                    .expect("the server keeps working while the CLI writes");
                calls += 1;
            }
            calls
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = run_tessera_async(&["install-token", "regenerate"], &[("DATABASE_URL", url)]).await;
    stop.store(true, Ordering::Relaxed);
    let calls = load.await.expect("load task");
    assert!(calls > 0);
    out
}

/// The CLI printed the boot banner with a new token (its only banner
/// line), logged no fragment of it; returns the token.
fn assert_cli_printed_a_new_banner(
    server: &TestServer,
    first: &str,
    out: &std::process::Output,
) -> String {
    let cli_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let cli_stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "regenerate failed: {cli_stderr}");
    let second = token_in_banner(&cli_stdout);
    assert_ne!(second, first);
    let boot_banner = server.stdout().replace(first, "<TOKEN>");
    let cli_banner = cli_stdout.replace(&second, "<TOKEN>");
    assert!(
        boot_banner.contains(cli_banner.trim_end()),
        "the CLI prints the boot banner:\n{cli_stdout}\nvs\n{}",
        server.stdout()
    );
    assert_no_fragment(&cli_stderr, &second, "the CLI's logs");
    second
}

/// IssueInstallToken needs an Admin caller: neither no caller nor an
/// install token as bearer may call it, and the refusals change nothing.
async fn assert_issue_needs_an_admin(
    server: &TestServer,
    conn: &DatabaseConnection,
    pending: &str,
) {
    let mut anonymous = server.client(None).await;
    let err = issue_install_token(&mut anonymous, true)
        .await
        .expect_err("no caller credentials");
    assert_status(&err, Code::Unauthenticated, None);
    let mut with_install_token = server.client(Some(pending)).await;
    let err = issue_install_token(&mut with_install_token, true)
        .await
        .expect_err("an install token is not a bearer");
    assert_status(&err, Code::Unauthenticated, None);
    assert_eq!(
        install_rows(conn).await,
        vec![(token::sha256_hex(pending), None)]
    );
}

/// While `pending` is pending, force=false mints nothing; force=true
/// replaces it, and the token goes to the server's stdout (a second
/// banner), never to the service caller. Returns the new token.
async fn force_a_new_token(
    server: &TestServer,
    conn: &DatabaseConnection,
    pending: &str,
    status: &pb::GetInstallTokenStatusResponse,
) -> String {
    let mut service = server.scheduler().await;
    let response = issue_install_token(&mut service, false)
        .await
        .expect("issue");
    assert!(response.install_token.is_none(), "nothing minted");
    assert_eq!(response.state(), InstallTokenState::Pending);
    assert_eq!(response.issued_at, status.issued_at);
    assert_eq!(
        install_rows(conn).await,
        vec![(token::sha256_hex(pending), None)]
    );

    let forced = issue_install_token(&mut service, true)
        .await
        .expect("force");
    assert_eq!(forced.state(), InstallTokenState::Pending);
    assert!(
        forced.install_token.is_none(),
        "never returned to a service"
    );
    let printed = wait_for_banners(|| server.stdout(), 2).await;
    let third = banner_lines(&printed)
        .last()
        .and_then(|line| line.strip_prefix(BANNER_PREFIX))
        .expect("a second banner")
        .to_owned();
    assert_eq!(token::parse(&third), Ok(TokenKind::Install));
    assert_ne!(third, pending);
    third
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn regenerate_while_the_server_runs_replaces_the_token() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_scheduler(&db, &[]).await;
    let first = boot_token(&server).await;
    let boot_status = install_status(&server).await;
    let issued_first = seconds!(boot_status.issued_at);
    let conn = db.connect().await;

    let out = regenerate_under_load(&server, db.url()).await;
    let second = assert_cli_printed_a_new_banner(&server, &first, &out);
    assert_eq!(
        install_rows(&conn).await,
        vec![(token::sha256_hex(&second), None)]
    );
    let pending = install_status(&server).await;
    assert_eq!(pending.state(), InstallTokenState::Pending);
    assert!(seconds!(pending.issued_at) >= issued_first);
    let err = consume_as_ada(&server, &first)
        .await
        .expect_err("the old token stops working");
    assert_status(&err, Code::Unauthenticated, None);

    assert_issue_needs_an_admin(&server, &conn, &second).await;
    let third = force_a_new_token(&server, &conn, &second, &pending).await;
    for old in [&first, &second] {
        let err = consume_as_ada(&server, old)
            .await
            .expect_err("replaced tokens stop working");
        assert_status(&err, Code::Unauthenticated, None);
    }
    let admin = consume_as_ada(&server, &third)
        .await
        .expect("the new token works");
    assert_eq!(humans(&conn).await, 1);

    let audit = audit_rows(&conn).await;
    let issues: Vec<_> = audit
        .iter()
        .filter(|r| r.action == "install_token.issue" && r.outcome == "ok")
        .collect();
    assert_eq!(
        issues.len(),
        3,
        "boot, CLI and RPC issues audited: {audit:?}"
    );
    assert!(
        issues.iter().any(|r| r.actor == "operator-cli"),
        "{issues:?}"
    );
    let secrets = [&first, &second, &third, &admin.admin_token];
    assert_not_in_audit(&audit, &secrets.map(String::as_str));
    let stderr = server.stderr();
    for secret in secrets {
        assert_no_fragment(&stderr, secret, "the server's logs");
    }
    assert!(
        !server.stdout().contains(&second),
        "the server does not print the token the CLI minted"
    );
}

// ---------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------

#[tokio::test]
async fn anonymous_calls_are_throttled_per_peer() {
    let db = TestDatabase::sqlite();
    let server =
        TestServer::start_scheduler(&db, &[("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "3")]).await;
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

    // The budget is per peer, not per connection.
    let mut again = server.client(None).await;
    let err = again
        .get_install_token_status(pb::GetInstallTokenStatusRequest {})
        .await
        .expect_err("throttled on a new connection");
    assert_status(&err, Code::ResourceExhausted, None);
    let conn = db.connect().await;
    assert_eq!(
        install_rows(&conn).await,
        vec![(token::sha256_hex(&token), None)]
    );
    assert_eq!(humans(&conn).await, 0);

    // Authenticated RPCs are not spent from the anonymous budget.
    for _ in 0..5 {
        verify_as(&server, &scheduler_secret(), &scheduler_secret())
            .await
            .expect("a service is not throttled");
    }
}
