//! The failure budget is the deployment's, not each replica's: guesses
//! spread over every replica are refused once, together, they spend it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, TransactionTrait};

use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Code;
use tessera_client::{Client, Secret};
use tessera_tests::grpc::{released_together, verify_as, verify_bearer};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, scheduler_secret};

use super::{REPLICAS, one_at_a_time, postgres};

/// Failed authentications allowed per key and minute.
const BUDGET: usize = 30;
/// Guesses made, round-robin over the replicas: enough to spend every
/// replica's budget if each kept its own.
const GUESSES: usize = BUDGET * REPLICAS + 30;
/// Guessers calling at once in the concurrent test.
const GUESSERS: usize = 12;

/// Three replicas on `db` with the small budget.
async fn replicas(db: &TestDatabase) -> [TestServer; REPLICAS] {
    let budget = BUDGET.to_string();
    let options = || ServerOptions::scheduler().env("TESSERA_AUTH_FAILURES_PER_MINUTE", &budget);
    let (a, b, c) = tokio::join!(
        TestServer::start(db, options()),
        TestServer::start(db, options()),
        TestServer::start(db, options()),
    );
    [a, b, c]
}

/// A client of each replica presenting `guess` as its credential.
async fn guessers(servers: &[TestServer], guess: &Secret) -> Vec<Client> {
    let mut clients = Vec::new();
    for server in servers {
        clients.push(server.client(Some(guess.expose())).await);
    }
    clients
}

/// Makes a call with the guessed credential at the replica numbered
/// `round` (round-robin); true when it was admitted (and refused
/// `UNAUTHENTICATED`), false when it was throttled.
async fn guess_at(clients: &[Client], round: usize) -> bool {
    let mut client = clients[round % clients.len()].clone();
    let status = verify_bearer(&mut client, "x")
        .await
        .expect_err("an unknown credential");
    match status.code() {
        Code::Unauthenticated => true,
        Code::ResourceExhausted => false,
        other => panic!("unexpected {other:?}: {status:?}"),
    }
}

/// `guess` is refused on every replica, and a valid service secret from
/// the same address still works on each.
async fn assert_refused_everywhere(servers: &[TestServer], guess: &Secret) {
    let secret = scheduler_secret();
    let clients = guessers(servers, guess).await;
    for (round, server) in servers.iter().enumerate() {
        assert!(!guess_at(&clients, round).await, "refused");
        verify_as(server, &secret, &secret)
            .await
            .expect("a valid secret from the same address");
    }
}

/// An unknown but well-formed credential, guessed in turn at each of three
/// replicas from one address by a caller that waits for each answer, is
/// admitted as often as the budget allows plus at most one per replica
/// (each learns the shared count with its own next failure), then
/// `RESOURCE_EXHAUSTED` everywhere.
#[tokio::test]
async fn guesses_spread_over_replicas_share_one_budget() {
    let _turn = one_at_a_time().await;
    let db = postgres().await;
    let servers = replicas(&db).await;
    let guess = token::generate(TokenKind::UserAccess);
    let clients = guessers(&servers, &guess).await;
    let mut admitted = 0;
    for round in 0..GUESSES {
        admitted += usize::from(guess_at(&clients, round).await);
    }
    eprintln!("{admitted} of {GUESSES} guesses admitted over {REPLICAS} replicas, budget {BUDGET}");
    assert!(
        (BUDGET..=BUDGET + REPLICAS).contains(&admitted),
        "{admitted} guesses admitted; the deployment's budget is {BUDGET} (+{REPLICAS})"
    );
    assert_refused_everywhere(&servers, &guess).await;
}

/// Twelve guessers at once over three replicas: each answer waits for its
/// failure to be counted by the deployment, and is a failure only if it
/// fitted in the budget, so the guessers together get the budget (and at
/// most one more per replica, for the budget that refills meanwhile).
#[tokio::test]
async fn concurrent_guesses_over_replicas_share_one_budget() {
    let _turn = one_at_a_time().await;
    let db = postgres().await;
    let servers = replicas(&db).await;
    let guess = token::generate(TokenKind::UserAccess);
    let clients = guessers(&servers, &guess).await;
    let next = Arc::new(AtomicUsize::new(0));
    let admitted_by_each = released_together(GUESSERS, |_| {
        let (clients, next) = (clients.clone(), next.clone());
        async move {
            let mut admitted = 0;
            loop {
                let round = next.fetch_add(1, Ordering::Relaxed);
                if round >= GUESSES {
                    return admitted;
                }
                admitted += usize::from(guess_at(&clients, round).await);
            }
        }
    })
    .await;
    let admitted: usize = admitted_by_each.iter().sum();
    eprintln!("{admitted} of {GUESSES} concurrent guesses admitted, budget {BUDGET}");
    let most = BUDGET + REPLICAS;
    assert!(
        (BUDGET..=most).contains(&admitted),
        "{admitted} guesses admitted; at most {most}"
    );
    assert_refused_everywhere(&servers, &guess).await;
    // Replicas writing the same keys at once must not deadlock each other
    // (a lost write is a failure nobody counted).
    for server in &servers {
        let stderr = server.stderr();
        assert!(!stderr.contains("could not share"), "{stderr}");
    }
}

/// A burst from one address, every call at once, spread over the replicas:
/// as many failures are answered as the deployment's budget allows (not
/// each replica's), the rest are refused, and the budget is spent for the
/// address everywhere. Each call presents a new forged user token (a
/// database lookup, so the burst is still being verified as its first
/// failures are counted); only the address is charged more than once.
#[tokio::test]
async fn a_concurrent_burst_over_replicas_gets_the_deployments_budget() {
    const BURST: usize = 48 * REPLICAS;
    let _turn = one_at_a_time().await;
    let db = postgres().await;
    let servers = replicas(&db).await;
    let mut clients = Vec::with_capacity(BURST);
    for round in 0..BURST {
        let forged = token::generate(TokenKind::UserAccess);
        let client = servers[round % REPLICAS]
            .client(Some(forged.expose()))
            .await;
        clients.push(client);
    }
    let admitted: usize = released_together(BURST, |i| {
        let client = clients[i].clone();
        async move { usize::from(guess_at(std::slice::from_ref(&client), 0).await) }
    })
    .await
    .into_iter()
    .sum();
    eprintln!(
        "{admitted} of {BURST} calls of a burst over {REPLICAS} replicas admitted, budget {BUDGET}"
    );
    assert!(
        (BUDGET - REPLICAS..=BUDGET + REPLICAS).contains(&admitted),
        "{admitted} admitted; the deployment's budget is {BUDGET} (±{REPLICAS})"
    );
    let guess = token::generate(TokenKind::UserAccess);
    assert_refused_everywhere(&servers, &guess).await;
}

/// A table of shared counts locked by someone else (an operator, a
/// migration) neither hangs the failed calls nor the shutdown: the count
/// write gives up after its lock timeout (the replica's own budget still
/// holds, and it says so), and SIGTERM exits promptly, not when the lock
/// is released.
#[tokio::test]
async fn a_locked_count_table_does_not_hold_up_the_shutdown() {
    let _turn = one_at_a_time().await;
    let db = postgres().await;
    let budget = BUDGET.to_string();
    let options = ServerOptions::scheduler().env("TESSERA_AUTH_FAILURES_PER_MINUTE", &budget);
    let mut server = TestServer::start(&db, options).await;
    let conn = db.connect().await;
    let lock = conn.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE auth_failures IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let guess = token::generate(TokenKind::UserAccess);
    let clients = guessers(std::slice::from_ref(&server), &guess).await;
    for round in 0..3 {
        assert!(guess_at(&clients, round).await, "within the budget");
    }
    let shared = |line: &str| line.contains("could not share failed authentications");
    assert!(
        server.wait_for_log(shared, Duration::from_secs(10)).await,
        "no warning that the counts could not be written"
    );
    let started = Instant::now();
    server.terminate();
    server.wait_exit_zero(Duration::from_secs(10)).await;
    eprintln!(
        "exited {:?} after SIGTERM with the table locked",
        started.elapsed()
    );
    lock.rollback().await.expect("rollback");
}
