//! No forward call is refused during rotations of the inbound secret, on
//! one server over SQLite and over PostgreSQL (several replicas: in the
//! `replicas` test binary).

use std::time::Duration;

use tessera_tests::forward_calls::rotations_never_refuse_a_forward_call;
use tessera_tests::{ServerOptions, TestDatabase, TestServer};

tessera_tests::on_both_backends!(open => no_forward_call_is_refused);

const GRACE: Duration = Duration::from_secs(2);

async fn open(db: &TestDatabase) -> TestServer {
    let options = ServerOptions::scheduler().env("TESSERA_INBOUND_GRACE", "2s");
    TestServer::start(db, options).await
}

async fn no_forward_call_is_refused(server: TestServer) {
    rotations_never_refuse_a_forward_call(std::slice::from_ref(&server), GRACE).await;
}
