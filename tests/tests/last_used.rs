//! A stored credential's `last_used_at`, through the real server on SQLite
//! and PostgreSQL: set when the credential is accepted (by VerifyBearer or
//! as a caller's own), to the minute, written off the request path at most
//! once a minute per credential, and written on a clean shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tessera_client::Client;
use tessera_client::pb;
use tessera_client::token;
use tessera_tests::credentials::{create_access_token, list_all};
use tessera_tests::grpc::{provision_workspace, register_workspace, verify_as, verify_bearer};
use tessera_tests::install::bootstrap_admin;
use tessera_tests::metrics::{metrics_addr, sample, scrape};
use tessera_tests::sql::count;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, now_seconds, scheduler_secret};

tessera_tests::on_both_backends!(
    open =>
    uses_are_recorded_to_the_minute_and_at_most_once_a_minute,
    workspace_tokens_record_their_use,
);

/// The flush period of these servers, in ms.
const FLUSH_MS: u64 = 100;
const FLUSHES: &str = "tessera_last_used_flushes_total";

struct Setup {
    server: TestServer,
    metrics: SocketAddr,
    admin_token: String,
}

async fn open(db: &TestDatabase) -> Setup {
    let flush = FLUSH_MS.to_string();
    let options = ServerOptions::scheduler().envs(&[
        ("TESSERA_LAST_USED_FLUSH_MS", &flush),
        ("TESSERA_METRICS_LISTEN", "127.0.0.1:0"),
    ]);
    let server = TestServer::start(db, options).await;
    let admin_token = bootstrap_admin(&server).await.admin_token;
    let metrics = metrics_addr(&server).await;
    Setup {
        server,
        metrics,
        admin_token,
    }
}

/// The `last_used_at` (Unix seconds) of credential `id`, as an admin
/// lists it.
async fn last_used(admin: &mut Client, id: &str) -> Option<f64> {
    let request = pb::ListCredentialsRequest {
        include_revoked: true,
        include_expired: true,
        ..Default::default()
    };
    let all = list_all(admin, request).await.expect("list");
    let found = all.iter().find(|c| c.credential_id == id).expect("listed");
    found
        .last_used_at
        .as_ref()
        .map(|at| at.seconds as f64 + f64::from(at.nanos) / 1e9)
}

/// Waits (a few flushes at most) until credential `id` has a last use.
async fn wait_for_use(admin: &mut Client, id: &str) -> f64 {
    let started = Instant::now();
    loop {
        if let Some(at) = last_used(admin, id).await {
            return at;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no last use recorded for {id}"
        );
        tokio::time::sleep(Duration::from_millis(FLUSH_MS / 2)).await;
    }
}

/// Returns early in a minute (by the clock the database shares with this
/// machine), so that a test of a few seconds stays within it.
async fn start_of_a_minute() -> f64 {
    let into = now_seconds() % 60.0;
    if into > 45.0 {
        tokio::time::sleep(Duration::from_secs_f64(60.2 - into)).await;
    }
    (now_seconds() / 60.0).floor()
}

async fn uses_are_recorded_to_the_minute_and_at_most_once_a_minute(setup: Setup) {
    let minute = start_of_a_minute().await;
    let mut ada = setup.server.client(Some(&setup.admin_token)).await;
    let created = create_access_token(&mut ada, "cli", 0)
        .await
        .expect("create");
    let id = created.credential.expect("credential").credential_id;
    assert_eq!(last_used(&mut ada, &id).await, None, "never used yet");

    let token = created.access_token;
    verify_as(&setup.server, &scheduler_secret(), &token)
        .await
        .expect("verify");
    let used = wait_for_use(&mut ada, &id).await;
    assert_eq!(used, minute * 60.0, "the minute of the use, truncated");
    let ada_id = token::credential_id("usr", &setup.admin_token);
    assert_eq!(wait_for_use(&mut ada, &ada_id).await, minute * 60.0);

    // Everything noted so far is written; now a second of uses of both
    // tokens, over ten flush periods, writes nothing more.
    tokio::time::sleep(Duration::from_millis(3 * FLUSH_MS)).await;
    let flushes = sample(&scrape(setup.metrics), FLUSHES);
    assert!(flushes >= 1.0, "flushes are counted");
    let mut scheduler = setup.server.scheduler().await;
    for _ in 0..20 {
        verify_bearer(&mut scheduler, &token).await.expect("verify");
        last_used(&mut ada, &id).await;
        tokio::time::sleep(Duration::from_millis(FLUSH_MS / 2)).await;
    }
    tokio::time::sleep(Duration::from_millis(3 * FLUSH_MS)).await;
    let later = sample(&scrape(setup.metrics), FLUSHES);
    assert_eq!(
        (now_seconds() / 60.0).floor(),
        minute,
        "the test outran its minute"
    );
    assert_eq!(later, flushes, "uses within the minute were written again");
    assert_eq!(last_used(&mut ada, &id).await, Some(used));
}

async fn workspace_tokens_record_their_use(setup: Setup) {
    let mut scheduler = setup.server.scheduler().await;
    let provisioned = provision_workspace(&mut scheduler, "ws-used", "Used")
        .await
        .expect("provision");
    let registration = provisioned.registration_token;
    let registered = register_workspace(&setup.server, &registration, "ws-used", false)
        .await
        .expect("register");
    let auth = registered.auth_token.expect("first registration");
    verify_bearer(&mut scheduler, &auth).await.expect("verify");
    let mut ada = setup.server.client(Some(&setup.admin_token)).await;
    for (tag, token) in [("wsr", &registration), ("wsa", &auth)] {
        let at = wait_for_use(&mut ada, &token::credential_id(tag, token)).await;
        assert!(at <= now_seconds(), "{tag}: {at}");
    }
}

/// Uses noted but not yet written when the server is told to stop are
/// written before it exits.
#[tokio::test]
async fn pending_uses_are_written_on_a_clean_shutdown() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::scheduler().env("TESSERA_LAST_USED_FLUSH_MS", "600000");
    let mut server = TestServer::start(&db, options).await;
    let admin_token = bootstrap_admin(&server).await.admin_token;
    let id = token::credential_id("usr", &admin_token);
    verify_as(&server, &scheduler_secret(), &admin_token)
        .await
        .expect("verify");
    let conn = db.connect().await;
    let used =
        format!("SELECT COUNT(*) FROM credentials WHERE id = '{id}' AND last_used_at IS NOT NULL");
    assert_eq!(count(&conn, &used).await, 0, "not written before the flush");
    server.terminate();
    server.wait_exit_zero(Duration::from_secs(10)).await;
    assert_eq!(count(&conn, &used).await, 1, "written at shutdown");
}
