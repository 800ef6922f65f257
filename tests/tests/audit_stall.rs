//! A refused call is answered while the audit table stalls: its audit
//! entry is waited for at most a second, so a database that hangs cannot
//! hold failing callers (and keep their failures uncounted) until the
//! request timeout.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, TransactionTrait};
use tessera_client::tonic::Code;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status, mint_ticket};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refusal_is_answered_while_the_audit_table_is_locked() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let conn = db.connect().await;
    let lock = conn.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock the audit table");

    let junk = "tsr_usr_notatokenatall";
    let mut caller = server.client(Some(junk)).await;
    let started = Instant::now();
    let call = mint_ticket(&mut caller, "u", "", 0);
    let answer = tokio::time::timeout(Duration::from_secs(8), call).await;
    let took = started.elapsed();
    lock.rollback().await.expect("unlock");
    let status = answer
        .expect("answered before the request timeout")
        .expect_err("refused");
    assert_status(&status, Code::Unauthenticated, None);
    assert!(took < Duration::from_secs(4), "answered after {took:?}");
}
