//! Tickets end to end against real server processes: minted, consumed
//! once with their identity, refused when unknown, malformed, spent by a
//! purpose mismatch or expired (each with its `ErrorInfo` reason and never
//! more than the first 8 characters of the ticket), validated at mint time,
//! exactly once under concurrency on SQLite and PostgreSQL, and only for
//! service callers.

use std::time::Duration;

use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Code;
use tessera_tests::grpc::internal_credential;
use tessera_tests::secrets::{assert_not_logged, assert_refused, change_char};
use tessera_tests::sql::count;
use tessera_tests::tickets::{
    EXPIRED, REPLAYED, UNKNOWN, assert_exactly_once, consume_race, internal, mint, try_mint,
};
use tessera_tests::{
    TestDatabase, TestServer, assert_status, consume_ticket, error_reason, now_seconds,
    scheduler_secret, seconds,
};

const MISMATCH: &str = "TICKET_PURPOSE_MISMATCH";
const MALFORMED: &str = "TICKET_MALFORMED";

// ---------------------------------------------------------------------------
// Mint, consume, replay
// ---------------------------------------------------------------------------

#[tokio::test]
async fn minted_ticket_is_consumed_once_with_its_identity() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_scheduler(&db, &[]).await;
    let mut client = server.scheduler().await;

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
    let mut other = server.scheduler().await;
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
            Some(REPLAYED),
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
    let server = TestServer::start_scheduler(&db, &[]).await;
    let mut client = server.scheduler().await;

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

// ---------------------------------------------------------------------------
// Purpose
// ---------------------------------------------------------------------------

#[tokio::test]
async fn purpose_must_match_and_a_mismatch_spends_the_ticket() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_scheduler(&db, &[]).await;
    let mut client = server.scheduler().await;

    let ticket = mint(&mut client, "user-7", "ws-upgrade", 0).await;
    let status = consume_ticket(&mut client, &ticket, "other")
        .await
        .expect_err("wrong purpose");
    assert_refused(&status, Code::Unauthenticated, Some(MISMATCH), &ticket);
    let status = consume_ticket(&mut client, &ticket, "ws-upgrade")
        .await
        .expect_err("spent by the mismatch");
    assert_refused(&status, Code::Unauthenticated, Some(REPLAYED), &ticket);

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

// ---------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------

#[tokio::test]
async fn expired_tickets_never_succeed() {
    let fast_db = TestDatabase::sqlite();
    let slow_db = TestDatabase::sqlite();
    let (fast, slow) = tokio::join!(
        TestServer::start_scheduler(&fast_db, &[]),
        TestServer::start_scheduler(&slow_db, &[("TESSERA_REAPER_INTERVAL_MS", "600000")]),
    );
    let mut fast_client = fast.scheduler().await;
    let mut slow_client = slow.scheduler().await;

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
    let got = error_reason(&status);
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

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn mint_validates_its_arguments() {
    let db = TestDatabase::sqlite();
    let capped_db = TestDatabase::sqlite();
    let (server, capped) = tokio::join!(
        // No reaper pass during the test: the stored tickets are counted.
        TestServer::start_scheduler(&db, &[("TESSERA_REAPER_INTERVAL_MS", "600000")]),
        TestServer::start_scheduler(
            &capped_db,
            &[("TESSERA_TICKET_MAX_TTL", "5"), ("TESSERA_TICKET_TTL", "3")]
        ),
    );
    let mut client = server.scheduler().await;
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

    let mut client = capped.scheduler().await;
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

// ---------------------------------------------------------------------------
// Exactly once under concurrency
// ---------------------------------------------------------------------------

async fn exactly_once_under_concurrency(db: &TestDatabase) {
    let server = TestServer::start_scheduler(db, &[]).await;
    let mut minting = server.scheduler().await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(server.scheduler().await);
    }
    let mut minted = Vec::new();
    for round in 0..5 {
        let user_id = format!("user-{round}");
        let ticket = mint(&mut minting, &user_id, "ws-upgrade", 0).await;
        let results = consume_race(&clients, &ticket, "ws-upgrade", 64).await;
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

// ---------------------------------------------------------------------------
// Callers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn only_services_mint_and_consume() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_scheduler(&db, &[]).await;
    let mut service_client = server.scheduler().await;
    let ticket = mint(&mut service_client, "user-5", "", 0).await;
    let credential = internal(&mut service_client).await;

    // No bearer, a wrong one, or a ticket as bearer: UNAUTHENTICATED.
    let mut anonymous = server.client(None).await;
    let status = try_mint(&mut anonymous, "user-5", "github", "", 0)
        .await
        .expect_err("mint without a caller");
    assert_status(&status, Code::Unauthenticated, None);
    let status = internal_credential(&mut anonymous)
        .await
        .expect_err("internal credential without a caller");
    assert_status(&status, Code::Unauthenticated, None);
    let wrong = format!("{}-wrong", scheduler_secret());
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
    let status = internal_credential(&mut as_internal)
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

/// A consumer whose deadline passes while its take waits for the database
/// never learns the ticket was consumed, so the take must not spend it:
/// the ticket is still there for the retry.
#[tokio::test]
async fn a_take_whose_caller_gave_up_does_not_spend_the_ticket() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_scheduler(&db, &[]).await;
    let mut client = server.scheduler().await;
    let ticket = mint(&mut client, "user-late", "", 0).await;

    let conn = db.connect().await;
    let lock = tessera_tests::sql::hold_write_lock(&conn).await;
    let mut request =
        tessera_client::tonic::Request::new(tessera_client::pb::ConsumeTicketRequest {
            ticket: ticket.clone(),
            purpose: String::new(),
        });
    request.set_timeout(Duration::from_millis(300));
    let status = client
        .consume_ticket(request)
        .await
        .expect_err("the database is locked past the deadline");
    let gave_up = matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled);
    assert!(gave_up, "{status:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    lock.rollback().await.expect("release the lock");

    let identity = consume_ticket(&mut client, &ticket, "")
        .await
        .expect("the abandoned take left the ticket");
    assert_eq!(identity.user_id, "user-late");
}
