//! Several real `tessera` processes on one PostgreSQL database: tickets
//! consumed exactly once wherever they were minted and whichever replica
//! the consumers reach, internal credentials that live and die with their
//! process, the install-token boot and consume races, workspace auth-token
//! rotation seen at once everywhere, one failure budget for the whole
//! deployment, and a replica SIGKILLed under load losing no acknowledged
//! ticket and double-spending none.
//!
//! PostgreSQL is required here: these tests fail, not skip, without it.
//! Figures (rounds, concurrency, durations) are printed with `eprintln!`;
//! run with `--nocapture` to see them.

mod abandoned_takes;
mod clocks;
mod forward_calls;
mod install_token;
mod internal_credentials;
mod invites;
mod kill_under_load;
mod revocation;
mod secret_status;
mod throttle;
mod tickets;
mod workspace_lifecycle;
mod workspaces;

use std::time::Duration;

use tessera_tests::{ServerOptions, TestDatabase, TestServer};
use tokio::sync::{Mutex, MutexGuard};

/// Replicas in a replica set.
const REPLICAS: usize = 3;

/// How long a stopped replica may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Test servers heartbeat every 200 ms and a credential is refused after
/// three missed beats (600 ms); this adds slack for a loaded 2-core machine.
const SIGKILL_BOUND: Duration = Duration::from_secs(2);

/// The tests of this binary run one at a time. A replica set under load
/// can open up to 32 PostgreSQL connections per replica: two sets at once
/// exceed PostgreSQL's default `max_connections` (100), and calls then fail
/// with UNAVAILABLE ("too many clients already").
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Waits for this test's turn (see [`ONE_AT_A_TIME`]).
async fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// A fresh PostgreSQL database; there is no point in this binary without one.
async fn postgres() -> TestDatabase {
    TestDatabase::postgres_required().await
}

/// Three replicas on `db` calling as `SCHEDULER`, spawned in the same
/// instant (`join!` polls each start once before any waits), so they boot,
/// migrate and mint together.
async fn replicas(db: &TestDatabase) -> [TestServer; REPLICAS] {
    let (a, b, c) = tokio::join!(
        TestServer::start(db, ServerOptions::scheduler()),
        TestServer::start(db, ServerOptions::scheduler()),
        TestServer::start(db, ServerOptions::scheduler()),
    );
    [a, b, c]
}

/// Two replicas on `db`, started one after the other.
async fn two_replicas(db: &TestDatabase) -> (TestServer, TestServer) {
    let a = TestServer::start(db, ServerOptions::scheduler()).await;
    let b = TestServer::start(db, ServerOptions::scheduler()).await;
    (a, b)
}

/// A `SCHEDULER` client on its own connection to each of `servers`.
async fn schedulers(servers: &[TestServer]) -> Vec<tessera_client::Client> {
    let mut clients = Vec::new();
    for server in servers {
        clients.push(server.scheduler().await);
    }
    clients
}

/// The last few WARN/ERROR lines of a replica's (JSON) logs.
fn warnings(server: &TestServer) -> String {
    let stderr = server.stderr();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("\"WARN\"") || line.contains("\"ERROR\""))
        .collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
