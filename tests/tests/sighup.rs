//! SIGHUP, which service managers send for a reload and a closed terminal
//! sends too, does not stop the server: it is logged, reloads what can be
//! reloaded (`reload.rs`, `tls_reload.rs`), and the server keeps serving
//! until SIGTERM.

use std::time::{Duration, Instant};

use tessera_tests::{
    ServerOptions, ServerProcess, TestDatabase, TestServer, health_at, mint_ticket,
};
use tonic_health::pb::health_check_response::ServingStatus;

/// How long a stopped server may take to exit (the drain timeout in tests is
/// 5 s).
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server logs for each SIGHUP.
const LOGGED: &str = "SIGHUP received";

/// Waits until the logs hold `n` SIGHUP lines; panics after 10 s.
async fn wait_for_hangups(server: &TestServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stderr().matches(LOGGED).count() < n {
        assert!(
            Instant::now() < deadline,
            "{n} SIGHUP not logged; stderr:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each SIGHUP is logged; the server stays SERVING and its calls still
/// reach the database; SIGTERM then stops it with status 0.
#[tokio::test]
async fn sighup_is_logged_and_the_server_keeps_serving() {
    let db = TestDatabase::sqlite();
    let mut server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let mut client = server.scheduler().await;
    for n in 1..=2 {
        server.hangup();
        wait_for_hangups(&server, n).await;
        assert_eq!(
            server.health_status("").await,
            Some(ServingStatus::Serving),
            "after SIGHUP {n}"
        );
        mint_ticket(&mut client, "user-1", "ws-upgrade", 0)
            .await
            .expect("MintTicket after SIGHUP");
    }
    server.terminate();
    server.wait_exit_zero(EXIT_TIMEOUT).await;
}

/// A SIGHUP at any moment after the `listening` line (here: while the
/// migrations still run) leaves the server running: it becomes SERVING,
/// then stops on SIGTERM with status 0.
#[tokio::test]
async fn sighup_right_after_listening_is_survived() {
    for _ in 0..3 {
        let db = TestDatabase::sqlite();
        let options = ServerOptions::new().database_url(db.url());
        let mut process = ServerProcess::spawn(&options);
        let addr = process.wait_listening(Duration::from_secs(30)).await;
        process.hangup();
        let deadline = Instant::now() + Duration::from_secs(30);
        while health_at(addr, "").await != Some(ServingStatus::Serving) {
            if let Some(status) = process.exited() {
                panic!(
                    "exited on SIGHUP: {status:?}; stderr:\n{}",
                    process.stderr()
                );
            }
            assert!(Instant::now() < deadline, "never SERVING after SIGHUP");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process.terminate();
        process.wait_exit_zero(EXIT_TIMEOUT).await;
    }
}
