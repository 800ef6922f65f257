//! Replicas whose clocks disagree still agree on time: on PostgreSQL every
//! expiry and heartbeat is judged by the database's clock. A replica here
//! is made ten minutes slow with `TESSERA_CLOCK_SKEW_MS`, a setting that
//! exists for this test.

use std::time::Duration;

use tessera_client::tonic::Code;
use tessera_tests::grpc::{consume_ticket, internal_credential, mint_ticket};
use tessera_tests::tickets::EXPIRED;
use tessera_tests::{ServerOptions, TestServer, assert_status};

use super::{one_at_a_time, postgres};

/// How far behind the slow replica's clock is.
const SLOW_BY_MS: &str = "-600000";

#[tokio::test]
async fn a_replica_with_a_slow_clock_judges_time_by_the_database() {
    let _turn = one_at_a_time().await;
    let db = postgres().await;
    // No reaper during the test: an expired ticket stays to be judged.
    let options = || ServerOptions::scheduler().env("TESSERA_REAPER_INTERVAL_MS", "600000");
    let on_time = TestServer::start(&db, options()).await;
    let slow = TestServer::start(&db, options().env("TESSERA_CLOCK_SKEW_MS", SLOW_BY_MS)).await;
    let (mut on_time_client, mut slow_client) = (on_time.scheduler().await, slow.scheduler().await);

    let ticket = mint_ticket(&mut slow_client, "u-clock", "", 0)
        .await
        .expect("mint");
    consume_ticket(&mut on_time_client, &ticket, "")
        .await
        .expect("a fresh ticket from the slow replica, on the other");

    let ticket = mint_ticket(&mut on_time_client, "u-clock", "", 1)
        .await
        .expect("mint");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let status = consume_ticket(&mut slow_client, &ticket, "")
        .await
        .expect_err("expired a moment ago, by the database's clock, on the slow replica");
    assert_status(&status, Code::Unauthenticated, Some(EXPIRED));

    // The slow replica's heartbeats are not ten minutes old to the others:
    // its internal credential stays valid there.
    let credential = internal_credential(&mut slow_client).await.expect("mint");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let identity = consume_ticket(&mut on_time_client, &credential, "")
        .await
        .expect("the slow replica's internal credential, on the other");
    assert!(identity.internal);
}
