//! What tickets leave behind: only SHA-256 hashes stored, rows removed by
//! the reaper once expired or at once when consumed, audit entries for
//! every attempt naming public ids, and no ticket in the logs or the audit
//! table, even at `debug`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use tessera_client::Client;
use tessera_client::token;
use tessera_client::tonic::Code;
use tessera_tests::audit::{AuditRow, audit_rows};
use tessera_tests::grpc::internal_credential;
use tessera_tests::secrets::{assert_not_logged, assert_refused, change_char, leaks};
use tessera_tests::sql::{count, strings};
use tessera_tests::tickets::{EXPIRED, REPLAYED, UNKNOWN, mint};
use tessera_tests::{TestDatabase, TestServer, consume_ticket, scheduler_secret};

const MISMATCH: &str = "TICKET_PURPOSE_MISMATCH";
const MALFORMED: &str = "TICKET_MALFORMED";

// ---------------------------------------------------------------------------
// Logs and audit
// ---------------------------------------------------------------------------

/// Every way a ticket can be refused, once each, plus an unused ticket and
/// the internal credential used as one. Returns the secrets in the order
/// the audit check expects: used, mismatched, damaged, unused, expired,
/// internal.
async fn use_tickets_every_way(client: &mut Client) -> Vec<String> {
    let mut minted = Vec::new();
    let used = mint(client, "user-9", "ws-upgrade", 0).await;
    consume_ticket(client, &used, "ws-upgrade")
        .await
        .expect("consume");
    let status = consume_ticket(client, &used, "ws-upgrade")
        .await
        .expect_err("replay");
    assert_refused(&status, Code::Unauthenticated, Some(REPLAYED), &used);
    minted.push(used);

    let mismatched = mint(client, "user-9", "ws-upgrade", 0).await;
    let status = consume_ticket(client, &mismatched, "other")
        .await
        .expect_err("mismatch");
    assert_refused(&status, Code::Unauthenticated, Some(MISMATCH), &mismatched);
    minted.push(mismatched);

    let expired = mint(client, "user-9", "", 1).await;
    let damaged = mint(client, "user-9", "", 0).await;
    let status = consume_ticket(client, &change_char(&damaged, 30), "")
        .await
        .expect_err("damaged");
    assert_refused(&status, Code::Unauthenticated, Some(MALFORMED), &damaged);
    minted.push(damaged);
    let unused = mint(client, "user-9", "", 0).await;
    minted.push(unused);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let status = consume_ticket(client, &expired, "")
        .await
        .expect_err("expired");
    assert_refused(&status, Code::Unauthenticated, Some(EXPIRED), &expired);
    minted.push(expired);

    let credential = internal_credential(client)
        .await
        .expect("internal credential");
    consume_ticket(client, &credential, "")
        .await
        .expect("internal credential");
    minted.push(credential);
    minted
}

/// The audit log records every attempt of [`use_tickets_every_way`] with
/// the outcome its caller got, naming the internal credential by its
/// public id and a damaged ticket by its prefix, and never a secret.
fn assert_audited_without_secrets(rows: &[AuditRow], minted: &[String]) {
    let mut audited: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|r| r.action.starts_with("ticket."))
        .map(|r| {
            let resource = if r.resource.starts_with("int_") {
                "int_"
            } else {
                &r.resource
            };
            // A replay names who consumed the ticket first, and from where.
            let outcome = match r.outcome.strip_prefix(REPLAYED) {
                Some(first) => {
                    assert!(
                        first.starts_with(" (first consumed by svc_")
                            && first.contains(" from 127.0.0.1:"),
                        "{first}"
                    );
                    REPLAYED
                }
                None => r.outcome.as_str(),
            };
            (r.action.as_str(), outcome, resource)
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
        (consume, REPLAYED, &ids[0]),
        (consume, MISMATCH, &ids[1]),
        (consume, MALFORMED, "tsr_tkt_…"),
        (consume, EXPIRED, &ids[4]),
        (consume, "ok", "int_"),
    ];
    expected.extend([("ticket.mint", "ok", "user:github/user-9"); 5]);
    expected.sort_unstable();
    assert_eq!(audited, expected, "{rows:?}");
    for row in rows {
        for value in row.values() {
            assert!(
                !value.contains(&scheduler_secret()),
                "a secret in audit row {row:?}"
            );
            for ticket in minted {
                assert!(!leaks(value, ticket), "a ticket in audit row {row:?}");
            }
        }
    }
}

#[tokio::test]
async fn tickets_never_reach_logs_or_the_audit_table() {
    let db = TestDatabase::sqlite();
    // Debug logs: more output, more places a ticket could slip into.
    let env = [
        ("RUST_LOG", "debug"),
        ("TESSERA_REAPER_INTERVAL_MS", "600000"),
    ];
    let server = TestServer::start_scheduler(&db, &env).await;
    let minted = use_tickets_every_way(&mut server.scheduler().await).await;

    assert_not_logged(&server, &minted);
    for output in [server.stderr(), server.stdout()] {
        assert!(
            !output.contains(&scheduler_secret()),
            "the service secret was logged"
        );
    }
    let rows = audit_rows(&db.connect().await).await;
    assert_audited_without_secrets(&rows, &minted);
}

// ---------------------------------------------------------------------------
// Hashed storage and the reaper
// ---------------------------------------------------------------------------

/// The stored rows are the `live` tickets, by SHA-256 (64 lowercase hex
/// digits), with no fragment of any of `all` in any column.
async fn assert_only_hashes_stored(conn: &DatabaseConnection, live: &[&String], all: &[String]) {
    let rows = strings(
        conn,
        "SELECT hash, user_id, provider, purpose FROM tickets",
        4,
    )
    .await;
    assert_eq!(rows.len(), live.len(), "{rows:?}");
    let hashes: HashSet<String> = rows.iter().map(|row| row[0].clone()).collect();
    let expected: HashSet<String> = live.iter().map(|t| token::sha256_hex(t)).collect();
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
            for ticket in all {
                assert!(!leaks(value, ticket), "a ticket is stored: {row:?}");
            }
        }
    }
}

/// Waits (5 s at most) until `left` tickets are stored.
async fn wait_for_reaper(conn: &DatabaseConnection, left: i64) {
    let started = Instant::now();
    loop {
        let stored = count(conn, "SELECT COUNT(*) FROM tickets").await;
        if stored == left {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the reaper left {stored} tickets after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "expired tickets reaped {:?} after minting",
        started.elapsed()
    );
}

#[tokio::test]
async fn store_holds_hashes_and_the_reaper_empties_it() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start_scheduler(&db, &[]).await;
    let mut client = server.scheduler().await;
    let conn = db.connect().await;

    let mut short = Vec::new();
    for i in 0..5 {
        short.push(mint(&mut client, &format!("user-{i}"), "", 2).await);
    }
    let long = mint(&mut client, "user-long", "ws-upgrade", 300).await;
    let spent = mint(&mut client, "user-spent", "", 0).await;
    consume_ticket(&mut client, &spent, "")
        .await
        .expect("consume");
    let all: Vec<String> = short.iter().chain([&long, &spent]).cloned().collect();
    // A consumed ticket leaves nothing behind.
    let live: Vec<&String> = short.iter().chain([&long]).collect();
    assert_only_hashes_stored(&conn, &live, &all).await;

    wait_for_reaper(&conn, 1).await;
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
