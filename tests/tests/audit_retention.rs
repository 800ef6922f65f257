//! Audit entries are kept `TESSERA_AUDIT_RETENTION` and then pruned by the
//! reaper, so the audit table does not grow forever (failed
//! authentications from anyone add to it).

use std::time::{Duration, Instant};

use tessera_tests::grpc::verify_as;
use tessera_tests::sql::count;
use tessera_tests::{ServerOptions, ServerProcess, TestDatabase, TestServer};

#[tokio::test]
async fn entries_past_the_retention_are_pruned() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .env("TESSERA_AUDIT_RETENTION", "1s")
        .env("TESSERA_REAPER_INTERVAL_MS", "200");
    let server = TestServer::start(&db, options).await;
    let _ = verify_as(&server, "junk", "junk").await;
    let conn = db.connect().await;
    let audited = || count(&conn, "SELECT COUNT(*) FROM audit_log");
    assert!(audited().await > 0, "the failed call was audited");
    let started = Instant::now();
    while audited().await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "audit entries outlived their retention"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_retention_that_is_not_a_duration_is_refused() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::new()
        .database_url(db.url())
        .env("TESSERA_AUDIT_RETENTION", "soon");
    let mut process = ServerProcess::spawn(&options);
    let status = process.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success(), "started with a bad retention");
    let stderr = process.stderr();
    let named = stderr.contains("audit-retention") && stderr.contains("'soon'");
    assert!(named, "the refusal does not name the setting: {stderr}");
}
