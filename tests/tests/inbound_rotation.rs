//! Rotation of a workspace's inbound secret, as the platform and the
//! runtime see it over gRPC: the platform switches only once the runtime
//! has confirmed holding the next secret, the replaced one stays
//! acceptable for a grace period and then disappears, and a second
//! rotation replaces an unconfirmed one or, during a grace, needs force.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera_client::Client;
use tessera_client::token;
use tessera_client::tonic::Code;
use tessera_tests::audit::audit_rows;
use tessera_tests::grpc::{provision_workspace, register_workspace};
use tessera_tests::workspaces::{
    get_inbound_secret, platform_secret, register_holding, rotate_inbound_secret,
};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status};

tessera_tests::on_both_backends!(
    open =>
    the_platform_switches_only_after_the_runtime_confirms,
    a_second_rotation_replaces_an_unconfirmed_one_and_needs_force_during_a_grace,
    the_replaced_secret_is_dropped_when_its_grace_ends,
    a_malformed_confirmation_is_invalid_argument,
);

/// The grace of these tests' servers, short enough to see one end.
const GRACE: Duration = Duration::from_secs(3);

struct Setup<'a> {
    db: &'a TestDatabase,
    server: TestServer,
    admin: Client,
    /// The runtime's auth token.
    auth: String,
}

/// A server with a 3 s grace and a registered workspace `ws`.
async fn open(db: &TestDatabase) -> Setup<'_> {
    let options = ServerOptions::scheduler().env("TESSERA_INBOUND_GRACE", "3s");
    let server = TestServer::start(db, options).await;
    let mut admin = server.scheduler().await;
    let provisioned = provision_workspace(&mut admin, "ws", "")
        .await
        .expect("provision");
    let registered = register_workspace(&server, &provisioned.registration_token, "ws", false)
        .await
        .expect("register");
    Setup {
        db,
        server,
        admin,
        auth: registered.auth_token.expect("auth token"),
    }
}

fn now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

fn millis(timestamp: Option<prost_types::Timestamp>) -> i64 {
    let timestamp = timestamp.expect("a time");
    timestamp.seconds * 1_000 + i64::from(timestamp.nanos) / 1_000_000
}

async fn audited(db: &TestDatabase, action: &str) -> usize {
    let rows = audit_rows(&db.connect().await).await;
    rows.iter().filter(|row| row.action == action).count()
}

async fn the_platform_switches_only_after_the_runtime_confirms(mut s: Setup<'_>) {
    let old = platform_secret(&mut s.admin, "ws").await;
    let read = get_inbound_secret(&mut s.admin, "ws").await.expect("read");
    assert_eq!(read.inbound_secret_id, token::credential_id("wsi", &old));
    let refresh_in = millis(read.refresh_before) - now_ms();
    assert!((1_000..=4_000).contains(&refresh_in), "{refresh_in} ms");

    let started = rotate_inbound_secret(&mut s.admin, "ws", false)
        .await
        .expect("rotate");
    assert!(!started.replaced_unconfirmed);
    assert_eq!(platform_secret(&mut s.admin, "ws").await, old, "not yet");

    // The runtime learns the next secret and is told to come back soon.
    let learned = register_holding(&s.server, &s.auth, "ws", "")
        .await
        .expect("register");
    assert_eq!(
        learned.platform_inbound_secret.as_deref(),
        Some(old.as_str())
    );
    let next = learned
        .next_platform_inbound_secret
        .expect("the next secret");
    assert_eq!(
        learned.next_inbound_secret_id,
        started.next_inbound_secret_id
    );
    assert_eq!(
        learned.next_inbound_secret_id,
        token::credential_id("wsi", &next)
    );
    let again = learned.register_again_within.expect("come back");
    assert_eq!((again.seconds, again.nanos), (1, 500_000_000), "grace / 2");
    assert_eq!(learned.previous_platform_inbound_secret, None);

    // Holding something else confirms nothing.
    let wrong = token::credential_id("wsi", &old);
    let unconfirmed = register_holding(&s.server, &s.auth, "ws", &wrong)
        .await
        .expect("register");
    assert_eq!(
        unconfirmed.next_platform_inbound_secret.as_deref(),
        Some(next.as_str())
    );
    assert_eq!(platform_secret(&mut s.admin, "ws").await, old, "not yet");
    assert_eq!(audited(s.db, "workspace.promote_inbound_secret").await, 0);

    let confirmed = register_holding(&s.server, &s.auth, "ws", &started.next_inbound_secret_id)
        .await
        .expect("confirm");
    assert_eq!(
        confirmed.platform_inbound_secret.as_deref(),
        Some(next.as_str())
    );
    assert_eq!(confirmed.inbound_secret_id, started.next_inbound_secret_id);
    assert_eq!(confirmed.next_platform_inbound_secret, None);
    assert_eq!(confirmed.register_again_within, None);
    assert_eq!(
        confirmed.previous_platform_inbound_secret.as_deref(),
        Some(old.as_str())
    );
    let grace_left = millis(confirmed.previous_valid_until) - now_ms();
    assert!((1_000..=4_000).contains(&grace_left), "{grace_left} ms");
    assert_eq!(platform_secret(&mut s.admin, "ws").await, next, "switched");

    // Confirming again changes nothing.
    let repeated = register_holding(&s.server, &s.auth, "ws", &started.next_inbound_secret_id)
        .await
        .expect("again");
    assert_eq!(
        repeated.platform_inbound_secret.as_deref(),
        Some(next.as_str())
    );
    assert_eq!(
        repeated.previous_platform_inbound_secret.as_deref(),
        Some(old.as_str())
    );
    assert_eq!(audited(s.db, "workspace.rotate_inbound_secret").await, 1);
    assert_eq!(audited(s.db, "workspace.promote_inbound_secret").await, 1);
}

async fn a_second_rotation_replaces_an_unconfirmed_one_and_needs_force_during_a_grace(
    mut s: Setup<'_>,
) {
    let old = platform_secret(&mut s.admin, "ws").await;
    let first = rotate_inbound_secret(&mut s.admin, "ws", false)
        .await
        .expect("rotate");
    let second = rotate_inbound_secret(&mut s.admin, "ws", false)
        .await
        .expect("rotate again");
    assert!(second.replaced_unconfirmed);
    assert_ne!(first.next_inbound_secret_id, second.next_inbound_secret_id);
    // The replaced next secret can no longer be confirmed.
    let stale = register_holding(&s.server, &s.auth, "ws", &first.next_inbound_secret_id)
        .await
        .expect("register");
    assert_eq!(stale.next_inbound_secret_id, second.next_inbound_secret_id);
    assert_eq!(platform_secret(&mut s.admin, "ws").await, old);

    register_holding(&s.server, &s.auth, "ws", &second.next_inbound_secret_id)
        .await
        .expect("confirm");
    let during_grace = rotate_inbound_secret(&mut s.admin, "ws", false)
        .await
        .expect_err("a grace is running");
    assert_status(&during_grace, Code::FailedPrecondition, None);
    assert!(during_grace.message().contains("force"), "{during_grace:?}");

    let forced = rotate_inbound_secret(&mut s.admin, "ws", true)
        .await
        .expect("forced");
    assert!(!forced.replaced_unconfirmed);
    let after = register_holding(&s.server, &s.auth, "ws", "")
        .await
        .expect("register");
    assert_eq!(after.previous_platform_inbound_secret, None, "grace ended");
    assert_eq!(after.next_inbound_secret_id, forced.next_inbound_secret_id);
    assert_eq!(audited(s.db, "workspace.end_inbound_grace").await, 1);

    let missing = rotate_inbound_secret(&mut s.admin, "no-such-ws", false)
        .await
        .expect_err("unknown workspace");
    assert_status(&missing, Code::NotFound, None);
    let invalid = rotate_inbound_secret(&mut s.admin, "bad id", false)
        .await
        .expect_err("invalid id");
    assert_status(&invalid, Code::InvalidArgument, None);
}

async fn the_replaced_secret_is_dropped_when_its_grace_ends(mut s: Setup<'_>) {
    let started = rotate_inbound_secret(&mut s.admin, "ws", false)
        .await
        .expect("rotate");
    let confirmed = register_holding(&s.server, &s.auth, "ws", &started.next_inbound_secret_id)
        .await
        .expect("confirm");
    assert!(confirmed.previous_platform_inbound_secret.is_some());
    let deadline = millis(confirmed.previous_valid_until);

    // Past the deadline, registrations stop returning it at once, and the
    // reaper (every 200 ms on test servers) erases it and audits that.
    tokio::time::sleep(GRACE + Duration::from_millis(200)).await;
    assert!(now_ms() > deadline);
    let after = register_holding(&s.server, &s.auth, "ws", "")
        .await
        .expect("register");
    assert_eq!(after.previous_platform_inbound_secret, None);
    assert_eq!(after.previous_valid_until, None);
    let action = "workspace.expire_previous_inbound_secret";
    let mut swept = 0;
    for _ in 0..50 {
        swept = audited(s.db, action).await;
        if swept > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(swept, 1, "audited once");
    let conn = s.db.connect().await;
    let kept = tessera_tests::sql::count(
        &conn,
        "SELECT COUNT(*) FROM workspaces WHERE previous_inbound_secret IS NOT NULL",
    )
    .await;
    assert_eq!(kept, 0, "the old secret is erased");
}

/// A confirmation is a public id as a registration handed it out; anything
/// else (a NUL byte, which PostgreSQL refuses in text, free text, a huge
/// string) is refused before it reaches the database, and confirms nothing.
async fn a_malformed_confirmation_is_invalid_argument(mut s: Setup<'_>) {
    let old = platform_secret(&mut s.admin, "ws").await;
    let started = rotate_inbound_secret(&mut s.admin, "ws", false)
        .await
        .expect("rotate");
    let huge = format!("{}{}", started.next_inbound_secret_id, "0".repeat(100_000));
    let with_nul = format!("{}\0", started.next_inbound_secret_id);
    for held in ["\0", with_nul.as_str(), "' OR 1=1 --", huge.as_str()] {
        let refused = register_holding(&s.server, &s.auth, "ws", held)
            .await
            .expect_err("malformed");
        assert_status(&refused, Code::InvalidArgument, None);
        assert!(
            refused.message().contains("held_inbound_secret_id"),
            "{refused:?}"
        );
    }
    assert_eq!(
        platform_secret(&mut s.admin, "ws").await,
        old,
        "nothing confirmed"
    );
}
