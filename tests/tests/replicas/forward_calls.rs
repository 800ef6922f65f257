//! No forward call is refused during rotations of the inbound secret when
//! the runtime registers and the platform reads through different replicas.

use std::time::Duration;

use tessera_tests::forward_calls::rotations_never_refuse_a_forward_call;
use tessera_tests::{ServerOptions, TestServer};

use super::{one_at_a_time, postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_forward_call_is_refused_across_replicas() {
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let options = || ServerOptions::scheduler().env("TESSERA_INBOUND_GRACE", "2s");
    let (a, b, c) = tokio::join!(
        TestServer::start(&db, options()),
        TestServer::start(&db, options()),
        TestServer::start(&db, options()),
    );
    rotations_never_refuse_a_forward_call(&[a, b, c], Duration::from_secs(2)).await;
}
