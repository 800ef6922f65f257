//! Tickets minted on any replica, consumed exactly once on any replica.

use std::time::{Duration, Instant};

use tessera_client::Client;
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Code;
use tessera_tests::grpc::{consume_ticket, mint_ticket};
use tessera_tests::secrets::assert_not_logged;
use tessera_tests::sql::count;
use tessera_tests::tickets::{REPLAYED, assert_exactly_once, consume_race, is_replayed_ticket};
use tessera_tests::{TestServer, assert_status};

use super::{REPLICAS, one_at_a_time, postgres, replicas, schedulers, two_replicas, warnings};

/// A 120 s ticket for (`user_id`, github), well-formed.
async fn mint(client: &mut Client, user_id: &str, purpose: &str) -> String {
    let ticket = mint_ticket(client, user_id, purpose, 120)
        .await
        .expect("mint");
    assert_eq!(token::parse(&ticket), Ok(TokenKind::Ticket));
    ticket
}

/// Every ordered pair of replicas, one call at a time: minted on one,
/// consumed on another, then refused on all. Returns the tickets.
async fn assert_every_pair_shares_tickets(minters: &mut [Client]) -> Vec<String> {
    let mut tickets = Vec::new();
    for from in 0..REPLICAS {
        for to in (0..REPLICAS).filter(|&to| to != from) {
            let user = format!("pair-{from}-{to}");
            let ticket = mint(&mut minters[from], &user, "ws-upgrade").await;
            let identity = consume_ticket(&mut minters[to], &ticket, "ws-upgrade")
                .await
                .unwrap_or_else(|s| panic!("minted on {from}, consumed on {to}: {s:?}"));
            assert_eq!(identity.user_id, user);
            assert!(!identity.internal);
            for again in minters.iter_mut() {
                let status = consume_ticket(again, &ticket, "ws-upgrade")
                    .await
                    .expect_err("spent on another replica");
                assert_status(&status, Code::Unauthenticated, Some(REPLAYED));
            }
            tickets.push(ticket);
        }
    }
    tickets
}

/// One round: a ticket minted on `minter` and raced by `consumers` calls
/// spread evenly over the replicas (`clients[i]` is on replica
/// `i % REPLICAS`). Exactly one wins; every loser is TICKET_REPLAYED.
/// Returns the ticket and the winning replica.
async fn race_round(
    round: usize,
    minter: &mut Client,
    clients: &[Client],
    servers: &[TestServer],
    consumers: usize,
) -> (String, usize) {
    let user = format!("user-{round}");
    let purpose = if round.is_multiple_of(2) {
        "ws-upgrade"
    } else {
        ""
    };
    let ticket = mint(minter, &user, purpose).await;
    let results = consume_race(clients, &ticket, purpose, consumers).await;

    let mut calls = [0usize; REPLICAS];
    let mut winners = Vec::new();
    for (index, result) in &results {
        let replica = index % REPLICAS;
        calls[replica] += 1;
        match result {
            Ok(identity) => winners.push((replica, identity.clone())),
            Err(status) => assert!(
                is_replayed_ticket(status),
                "round {round}: a losing consumer on replica {replica} got {status:?}; \
                 its last warnings:\n{}",
                warnings(&servers[replica])
            ),
        }
    }
    assert!(
        calls.iter().all(|&n| n >= consumers / REPLICAS),
        "calls per replica {calls:?}"
    );
    assert_eq!(
        winners.len(),
        1,
        "round {round}: {} of {consumers} consumers succeeded",
        winners.len()
    );
    let (replica, identity) = &winners[0];
    assert_eq!(identity.user_id, user);
    assert_eq!(identity.provider, "github");
    assert!(!identity.internal);
    (ticket, *replica)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tickets_are_consumed_exactly_once_by_100_consumers_over_three_replicas() {
    const ROUNDS: usize = 20;
    const CONSUMERS: usize = 100;
    const CONNECTIONS_PER_REPLICA: usize = 4;
    const BUDGET: Duration = Duration::from_secs(40);

    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let servers = replicas(&db).await;
    let mut minters = schedulers(&servers).await;
    // Interleaved, so consumer i calls replica i % 3.
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS_PER_REPLICA {
        clients.extend(schedulers(&servers).await);
    }
    let mut all = assert_every_pair_shares_tickets(&mut minters).await;

    let started = Instant::now();
    let mut wins = [0usize; REPLICAS];
    let mut won_elsewhere = 0;
    for round in 0..ROUNDS {
        assert!(
            started.elapsed() < BUDGET,
            "only {round} of {ROUNDS} rounds within {BUDGET:?}"
        );
        let minter = round % REPLICAS;
        let (ticket, winner) =
            race_round(round, &mut minters[minter], &clients, &servers, CONSUMERS).await;
        wins[winner] += 1;
        if winner != minter {
            won_elsewhere += 1;
        }
        all.push(ticket);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "replicas: {ROUNDS} rounds x {CONSUMERS} concurrent consumers over {REPLICAS} replicas \
         ({} connections) in {elapsed:.2?} ({:.0} ms/round); winners per replica {wins:?}, \
         {won_elsewhere} rounds won on a replica other than the minting one",
        clients.len(),
        elapsed.as_secs_f64() * 1000.0 / ROUNDS as f64,
    );

    let conn = db.connect().await;
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM tickets").await, 0);
    for server in &servers {
        assert_not_logged(server, &all);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumers_on_two_replicas_exactly_one_wins() {
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let (a, b) = two_replicas(&db).await;
    let mut minting = a.scheduler().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(a.scheduler().await);
        clients.push(b.scheduler().await);
    }
    let mut minted = Vec::new();
    for round in 0..3 {
        let user_id = format!("user-{round}");
        let ticket = mint_ticket(&mut minting, &user_id, "", 0)
            .await
            .expect("mint");
        // Alternating clients: half the calls go to A, half to B.
        let results = consume_race(&clients, &ticket, "", 64).await;
        assert_exactly_once(&results, &user_id, &ticket);
        minted.push(ticket);
    }
    let conn = db.connect().await;
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM tickets").await, 0);
    assert_not_logged(&a, &minted);
    assert_not_logged(&b, &minted);
}
