//! Internal credentials across replicas: each process's own, accepted by
//! every replica while its process runs, withdrawn at a clean shutdown and
//! refused within a bounded time after a SIGKILL.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tessera_client::Client;
use tessera_client::pb::PrincipalKind;
use tessera_client::token;
use tessera_client::tonic::Code;
use tessera_tests::grpc::{consume_ticket, mint_ticket, verify_bearer};
use tessera_tests::secrets::{assert_not_logged, assert_refused};
use tessera_tests::sql::count;
use tessera_tests::tickets::REPLAYED;
use tessera_tests::tickets::internal;
use tessera_tests::{TestDatabase, TestServer, assert_status, scheduler_secret};

use super::{
    EXIT_TIMEOUT, REPLICAS, SIGKILL_BOUND, one_at_a_time, postgres, replicas, two_replicas,
};

/// The identity and subject of the internal credential.
const INTERNAL_ID: &str = "server-internal";

/// Accepted on `client`'s replica: as a ticket stand-in and by VerifyBearer.
async fn assert_internal_accepted(client: &mut Client, credential: &str, what: &str) {
    let identity = consume_ticket(client, credential, "")
        .await
        .unwrap_or_else(|s| panic!("{what}: ConsumeTicket refused it: {s:?}"));
    assert!(identity.internal, "{what}");
    assert_eq!(identity.user_id, INTERNAL_ID, "{what}");
    assert_eq!(identity.provider, INTERNAL_ID, "{what}");
    let principal = verify_bearer(client, credential)
        .await
        .unwrap_or_else(|s| panic!("{what}: VerifyBearer refused it: {s:?}"));
    assert_eq!(principal.kind(), PrincipalKind::Internal, "{what}");
    assert_eq!(principal.subject, INTERNAL_ID, "{what}");
}

/// Refused on `server`: as a ticket stand-in, by VerifyBearer, and as the
/// caller's own bearer.
async fn assert_internal_refused(server: &TestServer, client: &mut Client, credential: &str) {
    let status = consume_ticket(client, credential, "")
        .await
        .expect_err("ConsumeTicket of a dead replica's credential");
    assert_status(&status, Code::Unauthenticated, None);
    let status = verify_bearer(client, credential)
        .await
        .expect_err("VerifyBearer of a dead replica's credential");
    assert_status(&status, Code::Unauthenticated, None);
    let mut as_caller = server.client(Some(credential)).await;
    let status = verify_bearer(&mut as_caller, &scheduler_secret())
        .await
        .expect_err("a dead replica's credential as caller");
    assert_status(&status, Code::Unauthenticated, None);
}

/// Consumes `credential` on `client` every 10 ms until it is refused (5 s
/// at most); how long that took and how often it was accepted before.
async fn time_until_refused(client: &mut Client, credential: &str) -> (Duration, usize) {
    let since = Instant::now();
    let mut accepted = 0;
    loop {
        match consume_ticket(client, credential, "").await {
            Ok(identity) => {
                assert!(identity.internal);
                accepted += 1;
            }
            Err(status) => {
                assert_refused(&status, Code::Unauthenticated, None, credential);
                return (since.elapsed(), accepted);
            }
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "a dead replica's credential is still accepted 5 s after SIGKILL"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `credential`'s row is gone from `internal_credentials` within 5 s.
async fn assert_row_removed(db: &TestDatabase, credential: &str, what: &str) {
    let conn = db.connect().await;
    let sql = format!(
        "SELECT COUNT(*) FROM internal_credentials WHERE hash = '{}'",
        token::sha256_hex(credential)
    );
    let started = Instant::now();
    while count(&conn, &sql).await != 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every replica accepts every replica's credential; A's credential also
/// authenticates a caller on C (an INTERNAL principal, which may not call
/// VerifyBearer: PERMISSION_DENIED, not UNAUTHENTICATED).
async fn assert_accepted_everywhere(
    servers: &[TestServer],
    clients: &mut [Client],
    credentials: &[String],
) {
    for (name, client) in ["A", "B", "C"].into_iter().zip(clients.iter_mut()) {
        for (owner, credential) in ["A", "B", "C"].into_iter().zip(credentials) {
            let what = format!("{owner}'s credential on {name}");
            assert_internal_accepted(client, credential, &what).await;
        }
    }
    let mut a_on_c = servers[2].client(Some(&credentials[0])).await;
    let status = verify_bearer(&mut a_on_c, &credentials[2])
        .await
        .expect_err("INTERNAL is not SERVICE");
    assert_status(&status, Code::PermissionDenied, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn internal_credentials_live_and_die_with_their_replica() {
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let mut servers = replicas(&db).await;
    let mut clients = super::schedulers(&servers).await;
    let mut credentials = Vec::new();
    for client in &mut clients {
        credentials.push(internal(client).await);
    }
    let distinct: HashSet<&String> = credentials.iter().collect();
    assert_eq!(distinct.len(), REPLICAS, "one credential per process");
    assert_accepted_everywhere(&servers, &mut clients, &credentials).await;
    let [from_a, from_b, from_c] = <[String; 3]>::try_from(credentials).expect("three");
    let mut clients = clients.into_iter();
    let (_on_a, mut on_b, mut on_c) = (
        clients.next().expect("A"),
        clients.next().expect("B"),
        clients.next().expect("C"),
    );

    // SIGTERM: A withdraws its credential before it exits; B and C refuse
    // it as soon as the process is gone.
    let stopping = Instant::now();
    servers[0].terminate();
    servers[0].wait_exit_zero(EXIT_TIMEOUT).await;
    let sigterm_exit = stopping.elapsed();
    assert_internal_refused(&servers[1], &mut on_b, &from_a).await;
    assert_internal_refused(&servers[2], &mut on_c, &from_a).await;
    let refused_after_sigterm = stopping.elapsed();

    // B is alive: its heartbeat keeps its credential valid on C well past
    // the liveness bound.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_internal_accepted(&mut on_c, &from_b, "B's credential on C, B alive").await;

    // SIGKILL: no withdrawal; C refuses B's credential once its heartbeat is
    // older than the liveness bound.
    servers[1].kill();
    let (refused_after_kill, accepted_after_kill) = time_until_refused(&mut on_c, &from_b).await;
    eprintln!(
        "replicas: A exited {sigterm_exit:.2?} after SIGTERM and B, C refused its credential \
         {refused_after_sigterm:.2?} after the signal; C refused SIGKILLed B's credential \
         {refused_after_kill:.2?} after the kill ({accepted_after_kill} acceptances before; \
         documented bound 3 x 200 ms heartbeat = 600 ms, asserted <= {SIGKILL_BOUND:?})"
    );
    assert!(
        refused_after_kill <= SIGKILL_BOUND,
        "C accepted a SIGKILLed replica's credential for {refused_after_kill:?}"
    );
    let exit = servers[1].wait_exit(Duration::from_secs(5)).await;
    assert!(!exit.success(), "SIGKILL is not a clean exit");
    assert_internal_refused(&servers[2], &mut on_c, &from_b).await;
    assert_internal_accepted(&mut on_c, &from_c, "C's own credential").await;
    for server in &servers {
        assert_not_logged(server, &[&from_a, &from_b, &from_c]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_tickets_and_internal_credentials_until_clean_shutdown() {
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let (mut a, b) = two_replicas(&db).await;
    let mut on_a = a.scheduler().await;
    let mut on_b = b.scheduler().await;

    let ticket = mint_ticket(&mut on_a, "alice", "ws-upgrade", 0)
        .await
        .expect("mint");
    assert!(ticket.starts_with("tsr_tkt_"), "ticket prefix");
    let identity = consume_ticket(&mut on_b, &ticket, "ws-upgrade")
        .await
        .expect("minted on A, consumed on B");
    assert_eq!(identity.user_id, "alice");
    for client in [&mut on_a, &mut on_b] {
        let status = consume_ticket(client, &ticket, "ws-upgrade")
            .await
            .expect_err("already consumed on B");
        assert_refused(&status, Code::Unauthenticated, Some(REPLAYED), &ticket);
    }

    let from_a = internal(&mut on_a).await;
    let from_b = internal(&mut on_b).await;
    assert_ne!(from_a, from_b, "one credential per process");
    let identity = consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect("A's credential on B");
    assert!(identity.internal);
    assert_eq!(identity.user_id, INTERNAL_ID);
    consume_ticket(&mut on_a, &from_b, "")
        .await
        .expect("B's credential on A");

    let stopping = Instant::now();
    a.terminate();
    a.wait_exit_zero(EXIT_TIMEOUT).await;
    eprintln!("replica A exited {:?} after SIGTERM", stopping.elapsed());
    let status = consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect_err("A shut down cleanly: refused at once");
    assert_refused(&status, Code::Unauthenticated, None, &from_a);
    let conn = db.connect().await;
    let sql = format!(
        "SELECT COUNT(*) FROM internal_credentials WHERE hash = '{}'",
        token::sha256_hex(&from_a)
    );
    assert_eq!(count(&conn, &sql).await, 0, "A withdrew its credential");
    consume_ticket(&mut on_b, &from_b, "")
        .await
        .expect("B's own credential still works");
    assert_not_logged(&a, &[&ticket, &from_a, &from_b]);
    assert_not_logged(&b, &[&ticket, &from_a, &from_b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_replica_credential_is_refused_within_the_liveness_bound() {
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let (mut a, b) = two_replicas(&db).await;
    let mut on_a = a.scheduler().await;
    let mut on_b = b.scheduler().await;
    let from_a = internal(&mut on_a).await;
    consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect("A's credential on B");

    // A's heartbeat keeps it valid on B well past the liveness bound.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect("A is alive: its credential stays valid on B");

    a.kill();
    let (refused_after, _) = time_until_refused(&mut on_b, &from_a).await;
    eprintln!(
        "SIGKILL bound: B refused A's internal credential {refused_after:?} after SIGKILL \
         (heartbeat 200 ms x 3 = 600 ms)"
    );
    // 600 ms plus scheduling slack on a busy machine.
    assert!(
        refused_after <= Duration::from_millis(1500),
        "refused only after {refused_after:?}"
    );
    let status = a.wait_exit(Duration::from_secs(5)).await;
    assert!(!status.success());

    // It stays refused, and B's reaper removes the dead row.
    assert_row_removed(
        &db,
        &from_a,
        "the dead replica's credential row was never reaped",
    )
    .await;
    let status = consume_ticket(&mut on_b, &from_a, "")
        .await
        .expect_err("still refused");
    assert_refused(&status, Code::Unauthenticated, None, &from_a);
    let from_b = internal(&mut on_b).await;
    consume_ticket(&mut on_b, &from_b, "")
        .await
        .expect("B's own credential");
}
