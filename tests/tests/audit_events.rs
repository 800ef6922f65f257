//! ListAuditEvents through the real server and the generated client, on
//! SQLite and PostgreSQL: members of Admin read the audit log newest first,
//! filtered by actor, credential, action and time, a page at a time, and
//! no event holds a secret.

use std::time::Duration;

use tessera_client::Client;
use tessera_client::pb;
use tessera_client::token;
use tessera_client::tonic::Code;
use tessera_tests::audit::{audit_rows, event_values, list_all_audit_events, list_audit_events};
use tessera_tests::credentials::{create_access_token, insert_user_with_token};
use tessera_tests::grpc::{consume_ticket, mint_ticket, provision_workspace};
use tessera_tests::install::bootstrap_admin;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status, violated_fields};

tessera_tests::on_both_backends!(
    open =>
    each_filter_selects_and_pages_run_newest_first_despite_a_concurrent_write,
    since_is_inclusive_and_until_exclusive,
    only_admins_read_the_audit_log,
    a_page_token_is_bound_to_its_caller_and_filters,
);

/// The action of CreateAccessToken's audit entry.
const CREATE: &str = "access_token.create";

/// A server with its first admin, Ada.
struct Setup {
    db_url: String,
    server: TestServer,
    admin_token: String,
}

impl Setup {
    async fn admin(&self) -> Client {
        self.server.client(Some(&self.admin_token)).await
    }
}

async fn open(db: &TestDatabase) -> Setup {
    let server = TestServer::start(db, ServerOptions::scheduler()).await;
    let admin = bootstrap_admin(&server).await;
    Setup {
        db_url: db.url().to_owned(),
        admin_token: admin.admin_token,
        server,
    }
}

fn filtered(actor: &str, credential_id: &str, action: &str) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest {
        actor: actor.to_owned(),
        credential_id: credential_id.to_owned(),
        action: action.to_owned(),
        ..Default::default()
    }
}

/// `(at in nanoseconds, id)` of each event.
fn keys(events: &[pb::AuditEvent]) -> Vec<(i128, i64)> {
    events
        .iter()
        .map(|e| {
            let at = e.at.as_ref().expect("at");
            (
                i128::from(at.seconds) * 1_000_000_000 + i128::from(at.nanos),
                e.id,
            )
        })
        .collect()
}

#[track_caller]
fn assert_newest_first(events: &[pb::AuditEvent]) {
    let keys = keys(events);
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "newest first, by (at, id)");
}

/// Ada creates ten access tokens, the scheduler mints and consumes a
/// ticket. Paging by three through Ada's creations takes four pages, sees
/// each once, newest first, and not the one created between two pages
/// (newer than the first page); each filter selects exactly its events;
/// the unfiltered listing is the whole table; no event holds a secret.
async fn each_filter_selects_and_pages_run_newest_first_despite_a_concurrent_write(setup: Setup) {
    let mut ada = setup.admin().await;
    let mut secrets = vec![setup.admin_token.clone()];
    for i in 0..10 {
        let created = create_access_token(&mut ada, &format!("t{i}"), 60)
            .await
            .expect("create");
        secrets.push(created.access_token);
    }
    let mut scheduler = setup.server.scheduler().await;
    let ticket = mint_ticket(&mut scheduler, "u1", "", 0)
        .await
        .expect("mint");
    consume_ticket(&mut scheduler, &ticket, "")
        .await
        .expect("consume");
    secrets.push(ticket);

    let mut request = pb::ListAuditEventsRequest {
        page_size: 3,
        ..filtered("", "", CREATE)
    };
    let (mut seen, mut pages, mut late) = (Vec::new(), 0, None);
    loop {
        let page = list_audit_events(&mut ada, request.clone())
            .await
            .expect("page");
        assert!(page.events.len() <= 3);
        pages += 1;
        seen.extend(page.events);
        if pages == 1 {
            let created = create_access_token(&mut ada, "late", 60)
                .await
                .expect("create");
            late = created.credential.map(|c| c.credential_id);
            secrets.push(created.access_token);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(pages, 4, "ten events by three");
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(|e| e.action == CREATE && e.outcome == "ok"));
    let late = late.expect("late id");
    assert!(
        seen.iter().all(|e| e.resource != late),
        "an event newer than the first page is not in later ones"
    );
    let mut ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 10, "each event once");
    assert_newest_first(&seen);

    let ada_credential = token::credential_id("usr", &setup.admin_token);
    let by_actor = list_all_audit_events(&mut ada, filtered("ada@example.com", "", ""))
        .await
        .expect("by actor");
    assert!(by_actor.iter().all(|e| e.actor == "ada@example.com"));
    assert_eq!(by_actor.iter().filter(|e| e.action == CREATE).count(), 11);
    let by_credential = list_all_audit_events(&mut ada, filtered("", &ada_credential, ""))
        .await
        .expect("by credential");
    let ada_with_her_token: Vec<pb::AuditEvent> = by_actor
        .iter()
        .filter(|e| e.credential_id == ada_credential)
        .cloned()
        .collect();
    assert_eq!(
        by_actor.len(),
        ada_with_her_token.len() + 1,
        "and her install"
    );
    assert_eq!(keys(&by_credential), keys(&ada_with_her_token));
    let scheduler_actor = "scheduler@system.local";
    let by_service = list_all_audit_events(&mut ada, filtered(scheduler_actor, "", ""))
        .await
        .expect("by the scheduler");
    let actions: Vec<&str> = by_service.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["ticket.consume", "ticket.mint"], "newest first");
    let none = list_all_audit_events(&mut ada, filtered(scheduler_actor, "", CREATE))
        .await
        .expect("filters combine");
    assert!(none.is_empty(), "{none:?}");

    let everything = list_all_audit_events(&mut ada, pb::ListAuditEventsRequest::default())
        .await
        .expect("all");
    assert_newest_first(&everything);
    let conn = sea_orm::Database::connect(&setup.db_url)
        .await
        .expect("connect");
    let mut table: Vec<[String; 6]> = audit_rows(&conn)
        .await
        .iter()
        .map(|row| row.values().map(str::to_owned))
        .collect();
    table.reverse();
    let listed: Vec<[String; 6]> = everything
        .iter()
        .map(|e| event_values(e).map(str::to_owned))
        .collect();
    assert_eq!(listed, table, "the listing is the whole table");
    for event in &everything {
        for value in event_values(event) {
            for secret in &secrets {
                let hash = token::sha256_hex(secret);
                assert!(
                    !value.contains(secret.as_str()) && !value.contains(&hash),
                    "a secret in {event:?}"
                );
            }
        }
    }
}

/// `since` keeps an event at exactly that time, `until` leaves it out;
/// sub-millisecond bounds are exact too; `until` before `since` and bad
/// nanos are INVALID_ARGUMENT.
async fn since_is_inclusive_and_until_exclusive(setup: Setup) {
    let mut ada = setup.admin().await;
    for i in 0..3 {
        create_access_token(&mut ada, &format!("t{i}"), 60)
            .await
            .expect("create");
        // Each in a millisecond of its own, so each bound splits them.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let creations = list_all_audit_events(&mut ada, filtered("", "", CREATE))
        .await
        .expect("list");
    let middle = &creations[1];
    let at = middle.at.expect("at");
    let shifted = |nanos: i64| {
        let mut t = at;
        let total = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos) + i128::from(nanos);
        t.seconds = i64::try_from(total.div_euclid(1_000_000_000)).expect("seconds");
        t.nanos = i32::try_from(total.rem_euclid(1_000_000_000)).expect("nanos");
        t
    };
    let listed = |since, until| pb::ListAuditEventsRequest {
        since,
        until,
        ..filtered("", "", CREATE)
    };
    let cases = [
        (Some(at), None, true, "since is inclusive"),
        (None, Some(at), false, "until is exclusive"),
        (Some(at), Some(shifted(1)), true, "a window of 1 ns"),
        (Some(shifted(1)), None, false, "since 1 ns after"),
        (Some(shifted(-1)), Some(at), false, "until at it"),
        (
            Some(shifted(-1_000_000)),
            Some(shifted(1)),
            true,
            "a ms before",
        ),
    ];
    for (since, until, kept, why) in cases {
        let events = list_all_audit_events(&mut ada, listed(since, until))
            .await
            .expect("list");
        assert_eq!(events.iter().any(|e| e.id == middle.id), kept, "{why}");
    }
    let from_middle = list_all_audit_events(&mut ada, listed(Some(at), None))
        .await
        .expect("list");
    assert_eq!(
        keys(&from_middle),
        keys(&creations[..2]),
        "the middle and newer"
    );

    let backwards = pb::ListAuditEventsRequest {
        since: Some(at),
        until: Some(shifted(-1_000_000)),
        ..Default::default()
    };
    let status = list_audit_events(&mut ada, backwards)
        .await
        .expect_err("until before since");
    assert_status(&status, Code::InvalidArgument, None);
    assert_eq!(violated_fields(&status), ["until"]);
    let mut bad = at;
    bad.nanos = -1;
    let status = list_audit_events(
        &mut ada,
        pb::ListAuditEventsRequest {
            since: Some(bad),
            ..Default::default()
        },
    )
    .await
    .expect_err("bad nanos");
    assert_eq!(violated_fields(&status), ["since"]);
}

/// Members of Admin read it (a USER and a SERVICE); a plain user and a
/// workspace are PERMISSION_DENIED, no credentials UNAUTHENTICATED; a
/// filter with a control character is INVALID_ARGUMENT naming the field.
async fn only_admins_read_the_audit_log(setup: Setup) {
    let all = pb::ListAuditEventsRequest::default();
    let mut ada = setup.admin().await;
    list_audit_events(&mut ada, all.clone())
        .await
        .expect("an admin user");
    let mut scheduler = setup.server.scheduler().await;
    let workspace = provision_workspace(&mut scheduler, "ws-audit", "")
        .await
        .expect("provision");
    list_audit_events(&mut scheduler, all.clone())
        .await
        .expect("an admin service");

    let conn = sea_orm::Database::connect(&setup.db_url)
        .await
        .expect("connect");
    let bob_token = insert_user_with_token(&conn, "bob", "bob@example.com", None).await;
    let refused = [
        (Some(bob_token.as_str()), Code::PermissionDenied),
        (Some(&workspace.registration_token), Code::PermissionDenied),
        (None, Code::Unauthenticated),
    ];
    for (bearer, code) in refused {
        let mut client = setup.server.client(bearer).await;
        let status = list_audit_events(&mut client, all.clone())
            .await
            .expect_err("refused");
        assert_status(&status, code, None);
    }

    for field in ["actor", "credential_id", "action"] {
        let mut request = all.clone();
        let value = "a\u{0}b".to_owned();
        match field {
            "actor" => request.actor = value,
            "credential_id" => request.credential_id = value,
            _ => request.action = value,
        }
        let status = list_audit_events(&mut ada, request)
            .await
            .expect_err("a control character");
        assert_status(&status, Code::InvalidArgument, None);
        assert_eq!(violated_fields(&status), [field]);
    }
}

/// A page token resumes only the listing it came from: other filters,
/// another caller, or garbage are INVALID_ARGUMENT; another page size is
/// fine.
async fn a_page_token_is_bound_to_its_caller_and_filters(setup: Setup) {
    let mut ada = setup.admin().await;
    for i in 0..3 {
        create_access_token(&mut ada, &format!("t{i}"), 60)
            .await
            .expect("create");
    }
    let first = pb::ListAuditEventsRequest {
        page_size: 1,
        ..filtered("", "", CREATE)
    };
    let page = list_audit_events(&mut ada, first.clone())
        .await
        .expect("first page");
    assert!(!page.next_page_token.is_empty());
    let next = pb::ListAuditEventsRequest {
        page_token: page.next_page_token.clone(),
        ..first.clone()
    };
    let others = [
        pb::ListAuditEventsRequest {
            action: "ticket.mint".into(),
            ..next.clone()
        },
        pb::ListAuditEventsRequest {
            actor: "ada@example.com".into(),
            ..next.clone()
        },
        pb::ListAuditEventsRequest {
            since: page.events[0].at,
            ..next.clone()
        },
        pb::ListAuditEventsRequest {
            page_token: "not-a-token".into(),
            ..first.clone()
        },
    ];
    for request in others {
        let status = list_audit_events(&mut ada, request)
            .await
            .expect_err("a token of other filters");
        assert_status(&status, Code::InvalidArgument, None);
        assert_eq!(violated_fields(&status), ["page_token"]);
    }
    let mut scheduler = setup.server.scheduler().await;
    let status = list_audit_events(&mut scheduler, next.clone())
        .await
        .expect_err("another caller's token");
    assert_status(&status, Code::InvalidArgument, None);
    let bigger = pb::ListAuditEventsRequest {
        page_size: 10,
        ..next
    };
    let rest = list_audit_events(&mut ada, bigger)
        .await
        .expect("another page size");
    assert_eq!(rest.events.len(), 2);
    assert!(rest.next_page_token.is_empty());
}
