//! A consume whose caller gave up while its take waited on the ticket's row
//! leaves the ticket as it was for the consumer queued behind it on another
//! replica — the pattern of a client retrying elsewhere after a timeout.

use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};
use tessera_client::pb::ConsumeTicketRequest;
use tessera_client::token;
use tessera_client::tonic::{Code, Request};
use tessera_tests::grpc::{consume_ticket, mint_ticket};

use super::{one_at_a_time, postgres, two_replicas};

#[tokio::test]
async fn a_consumer_queued_behind_an_abandoned_take_gets_the_ticket() {
    let _turn = one_at_a_time().await;
    let db = postgres().await;
    let (a, b) = two_replicas(&db).await;
    let (mut on_a, mut on_b) = (a.scheduler().await, b.scheduler().await);
    let ticket = mint_ticket(&mut on_a, "user-retry", "", 60)
        .await
        .expect("mint");

    // Something else holds the ticket's row: both takes wait on it.
    let conn = db.connect().await;
    let lock = conn.begin().await.expect("begin");
    let hash = token::sha256_hex(&ticket);
    let sql = format!("SELECT 1 FROM tickets WHERE hash = '{hash}' FOR UPDATE");
    lock.execute_unprepared(&sql).await.expect("lock the row");

    let mut abandoned = Request::new(ConsumeTicketRequest {
        ticket: ticket.clone(),
        purpose: String::new(),
    });
    abandoned.set_timeout(Duration::from_millis(1_000));
    let first = tokio::spawn(async move { on_a.consume_ticket(abandoned).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ticket_ = ticket.clone();
    let retry = tokio::spawn(async move { consume_ticket(&mut on_b, &ticket_, "").await });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    lock.commit().await.expect("release the row");

    let status = first.await.expect("task").expect_err("past its deadline");
    let gave_up = matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled);
    assert!(gave_up, "{status:?}");
    let identity = retry
        .await
        .expect("task")
        .expect("the consumer behind the abandoned take gets the ticket");
    assert_eq!(identity.user_id, "user-retry");
}
