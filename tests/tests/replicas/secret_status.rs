//! Rotation of a service secret you can see finish: uses of each slot are
//! counted per replica and their last time is shared through the database,
//! so `tessera secrets status` on any replica says whether the previous
//! secret is still presented anywhere.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_client::pb;
use tessera_tests::metrics::{metrics_addr, sample, scrape};
use tessera_tests::{ServerOptions, TestServer, binary, scheduler_secret};

use super::{one_at_a_time, postgres};

fn secret(tag: &str) -> String {
    format!("{tag}-{}", "s".repeat(40))
}

/// `tessera secrets status --json` against `server`, as the scheduler.
fn status(server: &TestServer) -> Value {
    let out = Command::new(binary())
        .args(["secrets", "status", "--json"])
        .env_clear()
        .env("TESSERA_ADDR", server.addr.to_string())
        .env("TESSERA_TOKEN", scheduler_secret())
        .output()
        .expect("run tessera");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn verdict<'a>(status: &'a Value, name: &str) -> &'a Value {
    let services = status.as_array().expect("a list");
    let service = services.iter().find(|s| s["name"] == name);
    service.unwrap_or_else(|| panic!("{name} missing: {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_of_a_rotation_is_shared_by_every_replica() {
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let options = || {
        ServerOptions::scheduler()
            .service(
                "DEPLOYER",
                &format!("{},{}", secret("deployer-new"), secret("deployer-old")),
            )
            .service(
                "BATCH",
                &format!("{},{}", secret("batch-new"), secret("batch-old")),
            )
            .env("TESSERA_LAST_USED_FLUSH_MS", "100")
            .env("TESSERA_METRICS_LISTEN", "127.0.0.1:0")
            .log_format("json")
    };
    let (a, b, c) = tokio::join!(
        TestServer::start(&db, options()),
        TestServer::start(&db, options()),
        TestServer::start(&db, options()),
    );
    // A caller still on DEPLOYER's previous secret, through replica a; the
    // others on current secrets, through b.
    let call = |server: &TestServer, bearer: String| {
        let server_addr = server.endpoint();
        async move {
            let mut client = tessera_client::Client::builder(server_addr)
                .bearer(tessera_client::Secret::new(bearer))
                .connect()
                .await
                .expect("connect");
            let request = pb::ListCredentialsRequest::default();
            client.list_credentials(request).await.expect("a call");
        }
    };
    call(&a, secret("deployer-old")).await;
    call(&b, secret("deployer-new")).await;
    call(&b, secret("batch-new")).await;

    // Replica c saw none of it, and tells from the database.
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let shown = status(&c);
        // Replicas a and b flush their uses each on its own schedule.
        let deployer = verdict(&shown, "deployer");
        let recorded = |slot: &str| !deployer[slot]["last_used_at"].is_null();
        if recorded("previous") && recorded("current") {
            break shown;
        }
        assert!(Instant::now() < deadline, "no use recorded: {shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(verdict(&shown, "deployer")["verdict"], "in_use");
    assert_eq!(verdict(&shown, "batch")["verdict"], "safe_to_retire");
    assert!(verdict(&shown, "batch")["previous"]["last_used_at"].is_null());
    assert_eq!(verdict(&shown, "scheduler")["verdict"], "no_previous");

    // Each replica counts the uses it served, per slot.
    let series = |slot: &str| {
        format!("tessera_service_secret_uses_total{{name=\"deployer\",slot=\"{slot}\"}}")
    };
    let on_a = scrape(metrics_addr(&a).await);
    assert_eq!(sample(&on_a, &series("previous")), 1.0, "{on_a}");
    let on_b = scrape(metrics_addr(&b).await);
    assert_eq!(sample(&on_b, &series("current")), 1.0);
    assert_eq!(sample(&on_b, &series("previous")), 0.0);
}
