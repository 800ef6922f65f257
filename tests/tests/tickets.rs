//! Tickets and the internal credential (SPEC §2.2, §3), end to end against
//! real server processes on SQLite and PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tessera_client::Client;
use tessera_client::pb;
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::{Code, Status};
use tessera_tests::{
    ServerOptions, TestDatabase, TestServer, assert_status, consume_ticket, now_seconds, seconds,
    service_secret,
};
use tokio::sync::Barrier;
use tonic_types::StatusExt;

const SERVICE: &str = "SCHEDULER";
const INTERNAL_ID: &str = "server-internal";
const UNKNOWN: &str = "TICKET_UNKNOWN";
const EXPIRED: &str = "TICKET_EXPIRED";
const MISMATCH: &str = "TICKET_PURPOSE_MISMATCH";
const MALFORMED: &str = "TICKET_MALFORMED";

fn secret() -> String {
    service_secret("scheduler")
}

/// A server on `db` with the SCHEDULER service and extra environment.
async fn start(db: &TestDatabase, env: &[(&str, &str)]) -> TestServer {
    let options = ServerOptions::new().service(SERVICE, &secret()).envs(env);
    TestServer::start(db, options).await
}

/// A client on its own connection, calling as the SCHEDULER service.
async fn service(server: &TestServer) -> Client {
    server.client(Some(&secret())).await
}

async fn try_mint(
    client: &mut Client,
    user_id: &str,
    provider: &str,
    purpose: &str,
    ttl_seconds: u32,
) -> Result<pb::MintTicketResponse, Status> {
    let request = pb::MintTicketRequest {
        user_id: user_id.to_owned(),
        provider: provider.to_owned(),
        purpose: purpose.to_owned(),
        ttl_seconds,
    };
    Ok(client.mint_ticket(request).await?.into_inner())
}

/// Mints a ticket for (`user_id`, "github").
async fn mint(client: &mut Client, user_id: &str, purpose: &str, ttl_seconds: u32) -> String {
    let ticket = try_mint(client, user_id, "github", purpose, ttl_seconds)
        .await
        .expect("mint")
        .ticket;
    assert!(ticket.starts_with("tsr_tkt_"), "ticket prefix");
    ticket
}

async fn try_internal(client: &mut Client) -> Result<String, Status> {
    let request = pb::GetInternalCredentialRequest {};
    Ok(client
        .get_internal_credential(request)
        .await?
        .into_inner()
        .credential)
}

async fn internal(client: &mut Client) -> String {
    try_internal(client).await.expect("internal credential")
}

fn reason(status: &Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

/// True when `text` holds more of `ticket` than its first 8 characters: its
/// 9-character prefix, or any 12 consecutive characters after the prefix.
fn leaks(text: &str, ticket: &str) -> bool {
    if ticket.get(..9).is_some_and(|head| text.contains(head)) {
        return true;
    }
    let body = ticket.get(8..).unwrap_or("").as_bytes();
    body.windows(12)
        .filter_map(|window| std::str::from_utf8(window).ok())
        .any(|window| text.contains(window))
}

/// A refusal with `code` (and `reason`) that names at most 8 characters of
/// `ticket`, in its message, details and metadata alike.
#[track_caller]
fn assert_refused(status: &Status, code: Code, reason: Option<&str>, ticket: &str) {
    assert_status(status, code, reason);
    let details = String::from_utf8_lossy(status.details());
    let metadata = format!("{:?}", status.metadata());
    for (what, text) in [
        ("message", status.message()),
        ("details", &details),
        ("metadata", &metadata),
    ] {
        assert!(
            !leaks(text, ticket),
            "the status {what} reveals more than 8 characters of the ticket: {:?}",
            status.message()
        );
    }
}

/// None of `secrets` appears (beyond 8 characters) in the server's output.
#[track_caller]
fn assert_not_logged(server: &TestServer, secrets: &[String]) {
    let (stderr, stdout) = (server.stderr(), server.stdout());
    assert!(!stderr.is_empty(), "the server logged nothing at all");
    for secret in secrets {
        assert!(
            !leaks(&stderr, secret),
            "a ticket or credential reached the logs:\n{stderr}"
        );
        assert!(
            !leaks(&stdout, secret),
            "a ticket or credential reached stdout:\n{stdout}"
        );
    }
}

/// `ticket` with the character at `index` replaced by another base58 one.
fn change_char(ticket: &str, index: usize) -> String {
    let mut chars: Vec<char> = ticket.chars().collect();
    chars[index] = if chars[index] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

async fn count(conn: &DatabaseConnection, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

async fn strings(conn: &DatabaseConnection, sql: &str, columns: usize) -> Vec<Vec<String>> {
    let rows = conn
        .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("query");
    rows.iter()
        .map(|row| {
            (0..columns)
                .map(|i| row.try_get_by_index::<String>(i).expect("text column"))
                .collect()
        })
        .collect()
}

/// Fires `n` ConsumeTicket calls for `ticket` at once, spread over
/// `clients` (each a separate connection, possibly to separate servers).
async fn race(
    clients: &[Client],
    ticket: &str,
    purpose: &str,
    n: usize,
) -> Vec<Result<pb::TicketIdentity, Status>> {
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let mut client = clients[i % clients.len()].clone();
            let barrier = barrier.clone();
            let (ticket, purpose) = (ticket.to_owned(), purpose.to_owned());
            tokio::spawn(async move {
                barrier.wait().await;
                consume_ticket(&mut client, &ticket, &purpose).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.expect("consumer task"));
    }
    results
}

/// Exactly one success (for `user_id`); every other call TICKET_UNKNOWN.
#[track_caller]
fn assert_exactly_once(
    results: &[Result<pb::TicketIdentity, Status>],
    user_id: &str,
    ticket: &str,
) {
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(
        winners.len(),
        1,
        "{} of {} concurrent consumers succeeded",
        winners.len(),
        results.len()
    );
    assert_eq!(winners[0].user_id, user_id);
    assert!(!winners[0].internal);
    for status in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_refused(status, Code::Unauthenticated, Some(UNKNOWN), ticket);
    }
}

// 1, 2 ─ mint, consume, replay ─────────────────────────────────────────────

#[tokio::test]
async fn minted_ticket_is_consumed_once_with_its_identity() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[]).await;
    let mut client = service(&server).await;

    let before = now_seconds();
    let minted = try_mint(&mut client, "user-42", "github", "", 0)
        .await
        .expect("mint");
    let after = now_seconds();
    assert!(minted.ticket.starts_with("tsr_tkt_"));
    assert_eq!(token::parse(&minted.ticket), Ok(TokenKind::Ticket));
    let expires = seconds!(minted.expires_at);
    assert!(
        expires >= before + 29.0 && expires <= after + 31.0,
        "default lifetime is 30 s: expires {expires}, minted within [{before}, {after}]"
    );

    // Consumed on another connection: tickets are not bound to one.
    let mut other = service(&server).await;
    let identity = consume_ticket(&mut other, &minted.ticket, "")
        .await
        .expect("consume");
    assert_eq!(identity.user_id, "user-42");
    assert_eq!(identity.provider, "github");
    assert!(!identity.internal);
    let minted_at = seconds!(identity.minted_at);
    assert!(
        minted_at >= before - 1.0 && minted_at <= after + 1.0,
        "minted_at {minted_at} outside [{before}, {after}]"
    );

    for client in [&mut client, &mut other] {
        let status = consume_ticket(client, &minted.ticket, "")
            .await
            .expect_err("a replay is refused");
        assert_refused(
            &status,
            Code::Unauthenticated,
            Some(UNKNOWN),
            &minted.ticket,
        );
    }

    // Every mint is a fresh ticket, even for the same identity.
    let again = mint(&mut client, "user-42", "", 0).await;
    assert_ne!(again, minted.ticket);
    assert_not_logged(&server, &[minted.ticket, again]);
}

#[tokio::test]
async fn unknown_and_malformed_tickets_are_unauthenticated() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[]).await;
    let mut client = service(&server).await;

    let unknown = token::generate(TokenKind::Ticket);
    let status = consume_ticket(&mut client, unknown.expose(), "")
        .await
        .expect_err("never minted");
    assert_refused(
        &status,
        Code::Unauthenticated,
        Some(UNKNOWN),
        unknown.expose(),
    );

    let ticket = mint(&mut client, "user-1", "", 0).await;
    let len = ticket.len();
    let malformed = [
        "garbage".to_owned(),
        String::new(),
        "tsr_tkt_".to_owned(),
        change_char(&ticket, 12),
        change_char(&ticket, len - 3),
        ticket[..len - 1].to_owned(),
        format!("{ticket}x"),
        ticket.replacen("tsr_tkt_", "tsr_usr_", 1),
        format!(" {ticket}"),
    ];
    for bad in &malformed {
        let status = consume_ticket(&mut client, bad, "")
            .await
            .expect_err("malformed ticket");
        assert_refused(&status, Code::Unauthenticated, Some(MALFORMED), bad);
        // A near-copy of the real ticket must not reveal it either.
        assert_refused(&status, Code::Unauthenticated, None, &ticket);
    }

    // Well-formed tokens of other kinds are not tickets.
    for kind in [
        TokenKind::UserAccess,
        TokenKind::Install,
        TokenKind::WorkspaceAuth,
    ] {
        let other = token::generate(kind);
        let status = consume_ticket(&mut client, other.expose(), "")
            .await
            .expect_err("not a ticket");
        assert_refused(&status, Code::Unauthenticated, None, other.expose());
    }
    let huge = "a".repeat(100_000);
    let status = consume_ticket(&mut client, &huge, "")
        .await
        .expect_err("huge input");
    assert_status(&status, Code::Unauthenticated, None);
    assert!(status.message().len() < 200, "the input is echoed back");

    // None of the attempts spent the real ticket.
    let identity = consume_ticket(&mut client, &ticket, "")
        .await
        .expect("the real ticket still works");
    assert_eq!(identity.user_id, "user-1");
    assert_not_logged(&server, &[ticket, unknown.expose().to_owned()]);
}

// 3 ─ purpose ─────────────────────────────────────────────────────────────

#[tokio::test]
async fn purpose_must_match_and_a_mismatch_spends_the_ticket() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[]).await;
    let mut client = service(&server).await;

    let ticket = mint(&mut client, "user-7", "ws-upgrade", 0).await;
    let status = consume_ticket(&mut client, &ticket, "other")
        .await
        .expect_err("wrong purpose");
    assert_refused(&status, Code::Unauthenticated, Some(MISMATCH), &ticket);
    let status = consume_ticket(&mut client, &ticket, "ws-upgrade")
        .await
        .expect_err("spent by the mismatch");
    assert_refused(&status, Code::Unauthenticated, Some(UNKNOWN), &ticket);

    // A consumer that does not state the purpose does not get the ticket.
    let unstated = mint(&mut client, "user-7", "ws-upgrade", 0).await;
    let status = consume_ticket(&mut client, &unstated, "")
        .await
        .expect_err("purpose not stated");
    assert_refused(&status, Code::Unauthenticated, Some(MISMATCH), &unstated);

    let good = mint(&mut client, "user-7", "ws-upgrade", 0).await;
    let identity = consume_ticket(&mut client, &good, "ws-upgrade")
        .await
        .expect("right purpose");
    assert_eq!(identity.user_id, "user-7");
    assert_eq!(identity.provider, "github");
    assert_not_logged(&server, &[ticket, unstated, good]);
}

// 4 ─ expiry ──────────────────────────────────────────────────────────────

#[tokio::test]
async fn expired_tickets_never_succeed() {
    let fast_db = TestDatabase::sqlite();
    let slow_db = TestDatabase::sqlite();
    let (fast, slow) = tokio::join!(
        start(&fast_db, &[]),
        start(&slow_db, &[("TESSERA_REAPER_INTERVAL_MS", "600000")]),
    );
    let mut fast_client = service(&fast).await;
    let mut slow_client = service(&slow).await;

    // A short lifetime is usable while it lasts.
    let short = mint(&mut slow_client, "user-3", "", 2).await;
    consume_ticket(&mut slow_client, &short, "")
        .await
        .expect("a 2 s ticket used at once");

    let before = now_seconds();
    let on_fast = try_mint(&mut fast_client, "user-3", "github", "", 1)
        .await
        .expect("mint");
    let on_slow = mint(&mut slow_client, "user-3", "", 1).await;
    let expires = seconds!(on_fast.expires_at);
    assert!(
        (before + 0.5..=now_seconds() + 1.5).contains(&expires),
        "expires_at {expires} is not about 1 s from {before}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The reaper may already have removed it: expired or unknown.
    let status = consume_ticket(&mut fast_client, &on_fast.ticket, "")
        .await
        .expect_err("expired");
    assert_refused(&status, Code::Unauthenticated, None, &on_fast.ticket);
    let got = reason(&status);
    assert!(
        got.as_deref() == Some(EXPIRED) || got.as_deref() == Some(UNKNOWN),
        "unexpected reason {got:?}"
    );

    // No reaper pass yet: exactly TICKET_EXPIRED, and then it is gone.
    let status = consume_ticket(&mut slow_client, &on_slow, "")
        .await
        .expect_err("expired");
    assert_refused(&status, Code::Unauthenticated, Some(EXPIRED), &on_slow);
    let status = consume_ticket(&mut slow_client, &on_slow, "")
        .await
        .expect_err("expired, then unknown");
    assert_refused(&status, Code::Unauthenticated, Some(UNKNOWN), &on_slow);

    assert_not_logged(&fast, &[on_fast.ticket]);
    assert_not_logged(&slow, &[on_slow, short]);
}

// 5 ─ validation ──────────────────────────────────────────────────────────

#[tokio::test]
async fn mint_validates_its_arguments() {
    let db = TestDatabase::sqlite();
    let capped_db = TestDatabase::sqlite();
    let (server, capped) = tokio::join!(
        // No reaper pass during the test: the stored tickets are counted.
        start(&db, &[("TESSERA_REAPER_INTERVAL_MS", "600000")]),
        start(
            &capped_db,
            &[("TESSERA_TICKET_MAX_TTL", "5"), ("TESSERA_TICKET_TTL", "3")]
        ),
    );
    let mut client = service(&server).await;
    let long = "x".repeat(300);

    let invalid = [
        ("user-1", "github", "", 301),
        ("user-1", "github", "", u32::MAX),
        ("", "github", "", 0),
        ("user-1", "", "", 0),
        (long.as_str(), "github", "", 0),
        ("user-1", long.as_str(), "", 0),
        ("user-1", "github", long.as_str(), 0),
    ];
    for (user_id, provider, purpose, ttl) in invalid {
        let status = try_mint(&mut client, user_id, provider, purpose, ttl)
            .await
            .expect_err("invalid mint request");
        assert_status(&status, Code::InvalidArgument, None);
    }

    let cases = [(0, 30.0), (1, 1.0), (300, 300.0)];
    for (ttl, expected) in cases {
        let before = now_seconds();
        let minted = try_mint(&mut client, "user-1", "github", "", ttl)
            .await
            .expect("valid ttl");
        let lifetime = seconds!(minted.expires_at) - before;
        assert!(
            (expected - 1.0..=expected + 2.0).contains(&lifetime),
            "ttl_seconds={ttl}: lifetime {lifetime} s, expected {expected} s"
        );
    }
    // Refused requests store nothing.
    let conn = db.connect().await;
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM tickets").await, 3);

    let mut client = service(&capped).await;
    let status = try_mint(&mut client, "user-1", "github", "", 6)
        .await
        .expect_err("above TESSERA_TICKET_MAX_TTL");
    assert_status(&status, Code::InvalidArgument, None);
    for (ttl, expected) in [(5, 5.0), (0, 3.0)] {
        let before = now_seconds();
        let minted = try_mint(&mut client, "user-1", "github", "", ttl)
            .await
            .expect("within the configured maximum");
        let lifetime = seconds!(minted.expires_at) - before;
        assert!(
            (expected - 1.0..=expected + 2.0).contains(&lifetime),
            "capped ttl_seconds={ttl}: lifetime {lifetime} s, expected {expected} s"
        );
    }
}

// 6 ─ hygiene ─────────────────────────────────────────────────────────────

#[tokio::test]
async fn tickets_never_reach_logs_or_the_audit_table() {
    let db = TestDatabase::sqlite();
    // Debug logs: more output, more places a ticket could slip into.
    let server = start(
        &db,
        &[
            ("RUST_LOG", "debug"),
            ("TESSERA_REAPER_INTERVAL_MS", "600000"),
        ],
    )
    .await;
    let mut client = service(&server).await;
    let mut minted = Vec::new();

    let used = mint(&mut client, "user-9", "ws-upgrade", 0).await;
    consume_ticket(&mut client, &used, "ws-upgrade")
        .await
        .expect("consume");
    let status = consume_ticket(&mut client, &used, "ws-upgrade")
        .await
        .expect_err("replay");
    assert_refused(&status, Code::Unauthenticated, Some(UNKNOWN), &used);
    minted.push(used);

    let mismatched = mint(&mut client, "user-9", "ws-upgrade", 0).await;
    let status = consume_ticket(&mut client, &mismatched, "other")
        .await
        .expect_err("mismatch");
    assert_refused(&status, Code::Unauthenticated, Some(MISMATCH), &mismatched);
    minted.push(mismatched);

    let expired = mint(&mut client, "user-9", "", 1).await;
    let damaged = mint(&mut client, "user-9", "", 0).await;
    let status = consume_ticket(&mut client, &change_char(&damaged, 30), "")
        .await
        .expect_err("damaged");
    assert_refused(&status, Code::Unauthenticated, Some(MALFORMED), &damaged);
    minted.push(damaged);
    let unused = mint(&mut client, "user-9", "", 0).await;
    minted.push(unused);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let status = consume_ticket(&mut client, &expired, "")
        .await
        .expect_err("expired");
    assert_refused(&status, Code::Unauthenticated, Some(EXPIRED), &expired);
    minted.push(expired);

    let credential = internal(&mut client).await;
    consume_ticket(&mut client, &credential, "")
        .await
        .expect("internal credential");
    minted.push(credential);

    assert_not_logged(&server, &minted);
    for output in [server.stderr(), server.stdout()] {
        assert!(!output.contains(&secret()), "the service secret was logged");
    }

    // The audit log records mints and consumptions, never their secrets.
    let conn = db.connect().await;
    let rows = strings(
        &conn,
        "SELECT action, outcome, actor, resource, credential_id FROM audit_log",
        5,
    )
    .await;
    // Every attempt, with the outcome its caller got. The internal
    // credential is named by its public id, a damaged ticket by its prefix.
    let mut audited: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|r| r[0].starts_with("ticket."))
        .map(|r| {
            let resource = if r[3].starts_with("int_") {
                "int_"
            } else {
                &r[3]
            };
            (r[0].as_str(), r[1].as_str(), resource)
        })
        .collect();
    audited.sort_unstable();
    let ids: Vec<String> = minted
        .iter()
        .map(|t| token::credential_id_of(t).unwrap_or_default())
        .collect();
    let consume = "ticket.consume";
    let mut expected = vec![
        (consume, "ok", ids[0].as_str()),
        (consume, UNKNOWN, &ids[0]),
        (consume, MISMATCH, &ids[1]),
        (consume, MALFORMED, "tsr_tkt_…"),
        (consume, EXPIRED, &ids[4]),
        (consume, "ok", "int_"),
    ];
    expected.extend([("ticket.mint", "ok", "user:github/user-9"); 5]);
    expected.sort_unstable();
    assert_eq!(audited, expected, "{rows:?}");
    for row in &rows {
        for value in row {
            assert!(!value.contains(&secret()), "a secret in audit row {row:?}");
            for ticket in &minted {
                assert!(!leaks(value, ticket), "a ticket in audit row {row:?}");
            }
        }
    }
}

// 7 ─ reaper and hashed storage ───────────────────────────────────────────

#[tokio::test]
async fn store_holds_hashes_and_the_reaper_empties_it() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[]).await;
    let mut client = service(&server).await;
    let conn = db.connect().await;

    let short: Vec<String> = {
        let mut short = Vec::new();
        for i in 0..5 {
            short.push(mint(&mut client, &format!("user-{i}"), "", 2).await);
        }
        short
    };
    let long = mint(&mut client, "user-long", "ws-upgrade", 300).await;
    let spent = mint(&mut client, "user-spent", "", 0).await;
    consume_ticket(&mut client, &spent, "")
        .await
        .expect("consume");
    let all: Vec<String> = short.iter().chain([&long, &spent]).cloned().collect();

    let rows = strings(
        &conn,
        "SELECT hash, user_id, provider, purpose FROM tickets",
        4,
    )
    .await;
    // A consumed ticket leaves nothing behind.
    assert_eq!(rows.len(), 6, "{rows:?}");
    let hashes: HashSet<String> = rows.iter().map(|row| row[0].clone()).collect();
    let expected: HashSet<String> = short
        .iter()
        .chain([&long])
        .map(|t| token::sha256_hex(t))
        .collect();
    assert_eq!(hashes, expected, "the hash column holds SHA-256 of tickets");
    for row in &rows {
        let hash = &row[0];
        assert_eq!(hash.len(), 64, "{hash}");
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{hash}"
        );
        for value in row {
            for ticket in &all {
                assert!(!leaks(value, ticket), "a ticket is stored: {row:?}");
            }
        }
    }

    let started = Instant::now();
    loop {
        let left = count(&conn, "SELECT COUNT(*) FROM tickets").await;
        if left == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the reaper left {left} tickets after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "expired tickets reaped {:?} after minting",
        started.elapsed()
    );
    let rows = strings(&conn, "SELECT hash FROM tickets", 1).await;
    assert_eq!(
        rows,
        vec![vec![token::sha256_hex(&long)]],
        "the live ticket stays"
    );

    for ticket in &short {
        let status = consume_ticket(&mut client, ticket, "")
            .await
            .expect_err("reaped");
        assert_refused(&status, Code::Unauthenticated, Some(UNKNOWN), ticket);
    }
    consume_ticket(&mut client, &long, "ws-upgrade")
        .await
        .expect("the long ticket survived the reaper");
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM tickets").await, 0);
    assert_not_logged(&server, &all);
}

// 8 ─ exactly once under concurrency ──────────────────────────────────────

async fn exactly_once_under_concurrency(db: &TestDatabase) {
    let server = start(db, &[]).await;
    let mut minting = service(&server).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(service(&server).await);
    }
    let mut minted = Vec::new();
    for round in 0..5 {
        let user_id = format!("user-{round}");
        let ticket = mint(&mut minting, &user_id, "ws-upgrade", 0).await;
        let results = race(&clients, &ticket, "ws-upgrade", 64).await;
        assert_exactly_once(&results, &user_id, &ticket);
        minted.push(ticket);
    }
    let conn = db.connect().await;
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM tickets").await, 0);
    assert_not_logged(&server, &minted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumers_sqlite_exactly_one_wins() {
    exactly_once_under_concurrency(&TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumers_postgres_exactly_one_wins() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    exactly_once_under_concurrency(&db).await;
}

// 9 ─ callers ─────────────────────────────────────────────────────────────

#[tokio::test]
async fn only_services_mint_and_consume() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[]).await;
    let mut service_client = service(&server).await;
    let ticket = mint(&mut service_client, "user-5", "", 0).await;
    let credential = internal(&mut service_client).await;

    // No bearer, a wrong one, or a ticket as bearer: UNAUTHENTICATED.
    let mut anonymous = server.client(None).await;
    let status = try_mint(&mut anonymous, "user-5", "github", "", 0)
        .await
        .expect_err("mint without a caller");
    assert_status(&status, Code::Unauthenticated, None);
    let status = try_internal(&mut anonymous)
        .await
        .expect_err("internal credential without a caller");
    assert_status(&status, Code::Unauthenticated, None);
    let wrong = format!("{}-wrong", secret());
    for bearer in [None, Some(wrong.as_str()), Some(ticket.as_str())] {
        let mut client = server.client(bearer).await;
        let status = consume_ticket(&mut client, &ticket, "")
            .await
            .expect_err("consume without a valid caller");
        assert_refused(&status, Code::Unauthenticated, None, &ticket);
    }

    // The internal credential authenticates but is not a SERVICE.
    let mut as_internal = server.client(Some(&credential)).await;
    let status = consume_ticket(&mut as_internal, &ticket, "")
        .await
        .expect_err("internal caller");
    assert_refused(&status, Code::PermissionDenied, None, &ticket);
    let status = try_internal(&mut as_internal)
        .await
        .expect_err("internal caller");
    assert_status(&status, Code::PermissionDenied, None);
    let status = try_mint(&mut as_internal, "user-5", "github", "", 0)
        .await
        .expect_err("internal caller");
    assert_status(&status, Code::PermissionDenied, None);

    // None of the refused callers spent the ticket.
    let identity = consume_ticket(&mut service_client, &ticket, "")
        .await
        .expect("ticket still unspent");
    assert_eq!(identity.user_id, "user-5");
    assert_not_logged(&server, &[ticket, credential]);
}

// 10 ─ internal credential ────────────────────────────────────────────────

#[tokio::test]
async fn internal_credential_is_stable_and_multi_use() {
    let db = TestDatabase::sqlite();
    let server = start(&db, &[]).await;
    let mut client = service(&server).await;

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
    let mut other = service(&server).await;
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
    let mut first = start(&db, &[]).await;
    let mut client = service(&first).await;
    let old = internal(&mut client).await;
    drop(client);
    first.terminate();
    let status = first.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit {status:?}:\n{}", first.stderr());

    let second = start(&db, &[]).await;
    let mut client = service(&second).await;
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

// 11 ─ replicas on PostgreSQL ─────────────────────────────────────────────

/// Two replicas on one PostgreSQL database.
async fn replicas(db: &TestDatabase) -> (TestServer, TestServer) {
    let a = start(db, &[]).await;
    let b = start(db, &[]).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_tickets_and_internal_credentials_until_clean_shutdown() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let (mut a, b) = replicas(&db).await;
    let mut on_a = service(&a).await;
    let mut on_b = service(&b).await;

    let ticket = mint(&mut on_a, "alice", "ws-upgrade", 0).await;
    let identity = consume_ticket(&mut on_b, &ticket, "ws-upgrade")
        .await
        .expect("minted on A, consumed on B");
    assert_eq!(identity.user_id, "alice");
    for client in [&mut on_a, &mut on_b] {
        let status = consume_ticket(client, &ticket, "ws-upgrade")
            .await
            .expect_err("already consumed on B");
        assert_refused(&status, Code::Unauthenticated, Some(UNKNOWN), &ticket);
    }

    let from_a = internal(&mut on_a).await;
    let from_b = internal(&mut on_b).await;
    assert_ne!(from_a, from_b, "one credential per process");
    let identity = consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect("A's credential on B");
    assert!(identity.internal);
    assert_eq!(identity.user_id, INTERNAL_ID);
    consume_ticket(&mut on_a, &from_b, "")
        .await
        .expect("B's credential on A");

    let stopping = Instant::now();
    a.terminate();
    let status = a.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit {status:?}:\n{}", a.stderr());
    eprintln!("replica A exited {:?} after SIGTERM", stopping.elapsed());

    let status = consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect_err("A shut down cleanly: refused at once");
    assert_refused(&status, Code::Unauthenticated, None, &from_a);
    let conn = db.connect().await;
    let sql = format!(
        "SELECT COUNT(*) FROM internal_credentials WHERE hash = '{}'",
        token::sha256_hex(&from_a)
    );
    assert_eq!(count(&conn, &sql).await, 0, "A withdrew its credential");
    consume_ticket(&mut on_b, &from_b, "")
        .await
        .expect("B's own credential still works");
    assert_not_logged(&a, &[ticket.clone(), from_a.clone(), from_b.clone()]);
    assert_not_logged(&b, &[ticket, from_a, from_b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_replica_credential_is_refused_within_the_liveness_bound() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let (mut a, b) = replicas(&db).await;
    let mut on_a = service(&a).await;
    let mut on_b = service(&b).await;
    let from_a = internal(&mut on_a).await;
    consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect("A's credential on B");

    // A's heartbeat keeps it valid on B well past the liveness bound.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect("A is alive: its credential stays valid on B");

    let killed = Instant::now();
    a.kill();
    let refused_after = loop {
        match consume_ticket(&mut on_b, &from_a, "").await {
            Ok(identity) => assert!(identity.internal),
            Err(status) => {
                assert_refused(&status, Code::Unauthenticated, None, &from_a);
                break killed.elapsed();
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "B still accepts a dead replica's credential 5 s after SIGKILL"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!(
        "SIGKILL bound: B refused A's internal credential {refused_after:?} after SIGKILL \
         (heartbeat 200 ms x 3 = 600 ms)"
    );
    // 600 ms plus scheduling slack on a busy machine.
    assert!(
        refused_after <= Duration::from_millis(1500),
        "refused only after {refused_after:?}"
    );
    let status = a.wait_exit(Duration::from_secs(5)).await;
    assert!(!status.success());

    // It stays refused, and B's reaper removes the dead row.
    let conn = db.connect().await;
    let sql = format!(
        "SELECT COUNT(*) FROM internal_credentials WHERE hash = '{}'",
        token::sha256_hex(&from_a)
    );
    let started = Instant::now();
    while count(&conn, &sql).await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the dead replica's credential row was never reaped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect_err("still refused");
    assert_refused(&status, Code::Unauthenticated, None, &from_a);
    let from_b = internal(&mut on_b).await;
    consume_ticket(&mut on_b, &from_b, "")
        .await
        .expect("B's own credential");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumers_on_two_replicas_exactly_one_wins() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let (a, b) = replicas(&db).await;
    let mut minting = service(&a).await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(service(&a).await);
        clients.push(service(&b).await);
    }
    let mut minted = Vec::new();
    for round in 0..3 {
        let user_id = format!("user-{round}");
        let ticket = mint(&mut minting, &user_id, "", 0).await;
        // Alternating clients: half the calls go to A, half to B.
        let results = race(&clients, &ticket, "", 64).await;
        assert_exactly_once(&results, &user_id, &ticket);
        minted.push(ticket);
    }
    let conn = db.connect().await;
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM tickets").await, 0);
    assert_not_logged(&a, &minted);
    assert_not_logged(&b, &minted);
}
