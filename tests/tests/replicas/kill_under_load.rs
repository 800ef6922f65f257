//! A replica SIGKILLed under load: no acknowledged ticket is lost and none
//! is spent twice; only consumes cut off by the kill may have an unknown
//! outcome.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_client::Client;
use tessera_tests::grpc::{consume_ticket, mint_ticket, outcome_unknown};
use tessera_tests::sql::count;
use tessera_tests::tickets::is_replayed_ticket;
use tonic_health::pb::health_check_response::ServingStatus;

use super::{REPLICAS, one_at_a_time, postgres, replicas, schedulers};

const WORKERS: usize = 9;
const LOAD: Duration = Duration::from_secs(3);
const KILL_AT: Duration = Duration::from_millis(1500);
const MAX_ITERATIONS: usize = 400;
/// The replica that is killed.
const VICTIM: usize = REPLICAS - 1;

/// What the load phase saw, shared by the workers.
#[derive(Default)]
struct Ledger {
    /// Tickets whose MintTicket returned OK: (ticket, user_id, purpose).
    acked: Vec<(String, String, String)>,
    /// Successful consumes per ticket.
    wins: HashMap<String, usize>,
    /// Tickets with a consume whose outcome is unknown: the call went to the
    /// replica being killed and failed on the connection, so it may have
    /// committed without an answer.
    ambiguous: HashSet<String>,
    /// Consume calls on the victim cut off by the kill.
    cut_off_consumes: usize,
    /// MintTicket calls that failed on the killed replica's connection (in
    /// flight at the kill, or sent before the worker saw it).
    lost_mints: usize,
    /// Calls answered with an error a healthy system must not give.
    unexpected: Vec<String>,
    mints: usize,
    consumes: usize,
}

type SharedLedger = Arc<Mutex<Ledger>>;

/// A call to the victim after the kill whose outcome is unknown: blamed
/// on the kill, not on the server.
fn cut_off_by_kill(
    replica: usize,
    killed: &AtomicBool,
    status: &tessera_client::tonic::Status,
) -> bool {
    replica == VICTIM && killed.load(Ordering::SeqCst) && outcome_unknown(status)
}

/// One MintTicket on `replica`, booked in the ledger; the ticket if it was
/// acknowledged.
async fn mint_booked(
    client: &mut Client,
    replica: usize,
    user: &str,
    purpose: &str,
    ledger: &SharedLedger,
    killed: &AtomicBool,
) -> Option<String> {
    let minted = mint_ticket(client, user, purpose, 300).await;
    let mut ledger = ledger.lock().expect("ledger");
    ledger.mints += 1;
    match minted {
        Ok(ticket) => {
            ledger
                .acked
                .push((ticket.clone(), user.to_owned(), purpose.to_owned()));
            Some(ticket)
        }
        Err(status) if cut_off_by_kill(replica, killed, &status) => {
            ledger.lost_mints += 1;
            None
        }
        Err(status) => {
            ledger
                .unexpected
                .push(format!("mint on {replica}: {status:?}"));
            None
        }
    }
}

/// Consumes `ticket` on every replica at once (not on the victim once it
/// is known to be dead), booking each outcome.
async fn consume_everywhere(
    clients: &[Client],
    ticket: &str,
    user: &str,
    purpose: &str,
    ledger: &SharedLedger,
    killed: &AtomicBool,
) {
    let dead = killed.load(Ordering::SeqCst);
    let consume_on = |replica: usize| {
        let mut client: Client = clients[replica].clone();
        let (ticket, purpose) = (ticket.to_owned(), purpose.to_owned());
        async move {
            if dead && replica == VICTIM {
                return None;
            }
            Some((
                replica,
                consume_ticket(&mut client, &ticket, &purpose).await,
            ))
        }
    };
    let (r0, r1, r2) = tokio::join!(consume_on(0), consume_on(1), consume_on(2));
    let mut ledger = ledger.lock().expect("ledger");
    for (replica, result) in [r0, r1, r2].into_iter().flatten() {
        ledger.consumes += 1;
        match result {
            Ok(identity) => {
                if identity.user_id != user {
                    ledger
                        .unexpected
                        .push(format!("consume returned {}", identity.user_id));
                }
                *ledger.wins.entry(ticket.to_owned()).or_default() += 1;
            }
            Err(status) if is_replayed_ticket(&status) => {}
            Err(status) if cut_off_by_kill(replica, killed, &status) => {
                ledger.ambiguous.insert(ticket.to_owned());
                ledger.cut_off_consumes += 1;
            }
            Err(status) => ledger
                .unexpected
                .push(format!("consume on {replica}: {status:?}")),
        }
    }
}

/// One load worker: for `LOAD`, mints round-robin over the replicas and
/// races each ticket on every replica, leaving one ticket in three for the
/// sweep.
async fn load_worker(
    worker: usize,
    mut clients: Vec<Client>,
    ledger: SharedLedger,
    killed: Arc<AtomicBool>,
) {
    let started = Instant::now();
    for i in 0..MAX_ITERATIONS {
        if started.elapsed() >= LOAD {
            break;
        }
        // Calls reach the victim until this worker sees the kill: those in
        // flight at that moment are the interesting ones.
        let mut minter = (worker + i) % REPLICAS;
        if minter == VICTIM && killed.load(Ordering::SeqCst) {
            minter = (minter + 1) % REPLICAS;
        }
        let user = format!("w{worker}-{i}");
        let purpose = if i % 2 == 0 { "ws-upgrade" } else { "" };
        let minted = mint_booked(
            &mut clients[minter],
            minter,
            &user,
            purpose,
            &ledger,
            &killed,
        )
        .await;
        let Some(ticket) = minted else { continue };
        if i % 3 != 2 {
            consume_everywhere(&clients, &ticket, &user, purpose, &ledger, &killed).await;
        }
    }
}

/// What the sweep found among tickets with an ambiguous consume.
#[derive(Debug, Default)]
struct Sweep {
    /// Acknowledged tickets consumed in the sweep.
    swept: usize,
    /// Ambiguous tickets still unspent (consumed in the sweep).
    ambiguous_unspent: usize,
    /// Ambiguous tickets the cut-off call had spent.
    ambiguous_spent: usize,
}

/// On the survivors: every acknowledged ticket not consumed under load is
/// consumable exactly once, unless a consume that may have committed was
/// cut off by the kill; and one more consume of any ticket is refused.
async fn sweep(survivors: &mut [Client], ledger: &Ledger) -> Sweep {
    let mut found = Sweep::default();
    let mut lost = Vec::new();
    let survivor_count = survivors.len();
    for (n, (ticket, user, purpose)) in ledger.acked.iter().enumerate() {
        let client = &mut survivors[n % survivor_count];
        let ambiguous = ledger.ambiguous.contains(ticket);
        if ledger.wins.get(ticket).copied().unwrap_or(0) == 0 {
            match consume_ticket(client, ticket, purpose).await {
                Ok(identity) => {
                    assert_eq!(&identity.user_id, user);
                    found.swept += 1;
                    if ambiguous {
                        found.ambiguous_unspent += 1;
                    }
                }
                Err(status) if is_replayed_ticket(&status) && ambiguous => {
                    found.ambiguous_spent += 1;
                }
                Err(status) => lost.push(format!("{}…: {status:?}", &ticket[..8])),
            }
        }
        // Whatever happened before, one more consume is refused.
        let status = consume_ticket(client, ticket, purpose)
            .await
            .expect_err("a second spend of an acknowledged ticket");
        assert!(is_replayed_ticket(&status), "replay got {status:?}");
    }
    assert!(
        lost.is_empty(),
        "acknowledged tickets lost: {} of {}: {lost:?}",
        lost.len(),
        ledger.acked.len()
    );
    found
}

/// The figures of a run, for `--nocapture`.
fn print_report(
    ledger: &Ledger,
    found: &Sweep,
    at_kill: (usize, usize),
    remaining: i64,
    times: [Duration; 2],
) {
    let consumed_in_load = ledger.wins.values().filter(|n| **n == 1).count();
    eprintln!(
        "replicas: kill under load: {WORKERS} workers over {REPLICAS} replicas for {:.2?}, \
         replica {VICTIM} SIGKILLed at {KILL_AT:?} (after {} mints, {} acknowledged); in all \
         {} mints, {} acknowledged, {} failed on the killed replica; {} consume calls, \
         {consumed_in_load} tickets consumed under load, {} in the sweep ({:.2?}); \
         {} consume calls on {} tickets cut off by the kill, of which {} tickets had no other \
         winner: {} still unspent (consumed in the sweep), {} spent by the cut-off call; \
         {remaining} unacknowledged tickets left stored (mints committed, answer lost); \
         0 acknowledged tickets lost, 0 double-spent",
        times[0],
        at_kill.0,
        at_kill.1,
        ledger.mints,
        ledger.acked.len(),
        ledger.lost_mints,
        ledger.consumes,
        found.swept,
        times[1],
        ledger.cut_off_consumes,
        ledger.ambiguous.len(),
        found.ambiguous_unspent + found.ambiguous_spent,
        found.ambiguous_unspent,
        found.ambiguous_spent,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_under_load_loses_no_acknowledged_ticket_and_double_spends_none() {
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let mut servers = replicas(&db).await;
    let ledger: SharedLedger = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let clients = schedulers(&servers).await;
        workers.push(tokio::spawn(load_worker(
            worker,
            clients,
            ledger.clone(),
            killed.clone(),
        )));
    }

    let load_started = Instant::now();
    tokio::time::sleep(KILL_AT).await;
    // The flag goes up first: a call failing on the victim from now on is
    // attributed to the kill.
    killed.store(true, Ordering::SeqCst);
    servers[VICTIM].kill();
    let at_kill = {
        let ledger = ledger.lock().expect("ledger");
        (ledger.mints, ledger.acked.len())
    };
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(30), worker)
            .await
            .expect("load workers stop")
            .expect("worker");
    }
    let load_time = load_started.elapsed();
    let ledger = Arc::try_unwrap(ledger)
        .ok()
        .expect("workers done")
        .into_inner()
        .expect("ledger");
    assert!(
        ledger.unexpected.is_empty(),
        "unexpected errors under load: {:#?}",
        ledger.unexpected
    );
    let double: Vec<_> = ledger.wins.iter().filter(|(_, n)| **n > 1).collect();
    assert!(double.is_empty(), "double-spent under load: {double:?}");

    let sweep_started = Instant::now();
    let found = sweep(&mut schedulers(&servers[..VICTIM]).await, &ledger).await;
    let sweep_time = sweep_started.elapsed();

    // Only mints that were never acknowledged may remain stored.
    let conn = db.connect().await;
    let remaining = count(&conn, "SELECT COUNT(*) FROM tickets").await;
    assert!(
        usize::try_from(remaining).expect("count") <= ledger.lost_mints,
        "{remaining} tickets stored after the sweep, but only {} mints were cut off",
        ledger.lost_mints
    );
    for server in &servers[..VICTIM] {
        assert_eq!(
            server.health_status("").await,
            Some(ServingStatus::Serving),
            "a survivor"
        );
    }
    print_report(&ledger, &found, at_kill, remaining, [load_time, sweep_time]);
    assert!(
        at_kill.1 > 0 && ledger.acked.len() > at_kill.1,
        "load ran on both sides of the kill"
    );
}
