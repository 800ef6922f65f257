//! Callers behind one address (a proxy, NAT, or everything on loopback): a
//! caller that does nothing wrong is never refused because of what others
//! at that address did, and a refusal that is not the caller's fault is
//! not charged to its failure budget.

use tessera_client::pb;
use tessera_client::tonic::Code;
use tessera_tests::grpc::{mint_ticket, provision_workspace, register_workspace, verify_as};
use tessera_tests::install::{boot_token, bootstrap_admin, consume_as_ada, insert_human};
use tessera_tests::sql::count;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status, service_secret};

/// Failed authentications allowed per key and minute in these tests.
const BUDGET: &str = "2";
/// Calls made in each test: more than the budget.
const CALLS: usize = 5;

/// A server whose service `PLATFORM` has `secret`, with the small budget.
async fn start(db: &TestDatabase, secret: &str, env: &[(&str, &str)]) -> TestServer {
    let options = ServerOptions::new()
        .service("PLATFORM", secret)
        .env("TESSERA_AUTH_FAILURES_PER_MINUTE", BUDGET)
        .envs(env);
    TestServer::start(db, options).await
}

/// A valid credential on an RPC that does not take its kind is a known
/// caller without the right: `PERMISSION_DENIED`, and not a failure, so
/// one holder of a shared secret calling the wrong RPC locks nobody out.
#[tokio::test]
async fn a_valid_credential_on_the_wrong_rpc_is_denied_and_not_charged() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("platform");
    let server = start(&db, &secret, &[]).await;
    let mut admin = server.client(Some(&secret)).await;
    let provisioned = provision_workspace(&mut admin, "ws", "")
        .await
        .expect("provision");
    let first = bootstrap_admin(&server).await;
    let user_id = first.admin.expect("admin principal").subject;
    let registration = provisioned.registration_token;
    let mut registrant = server.client(Some(&registration)).await;
    for bearer in [secret.as_str(), &first.admin_token] {
        for _ in 0..CALLS {
            let status = register_workspace(&server, bearer, "ws", false)
                .await
                .expect_err("not a workspace credential");
            assert_status(&status, Code::PermissionDenied, None);
        }
    }
    for _ in 0..CALLS {
        let status = mint_ticket(&mut registrant, &user_id, "", 0)
            .await
            .expect_err("a registration token cannot mint tickets");
        assert_status(&status, Code::PermissionDenied, None);
    }
    verify_as(&server, &secret, &secret)
        .await
        .expect("the service was not charged");
    register_workspace(&server, &registration, "ws", false)
        .await
        .expect("the registration token was not charged");
    let mut user = server.client(Some(&first.admin_token)).await;
    mint_ticket(&mut user, &user_id, "", 0)
        .await
        .expect("the user was not charged");
}

/// A service secret whose service user cannot be seeded (here: a human
/// already holds its `system.local` e-mail) is refused, never attached to
/// that human, and not charged: the caller presented a valid secret.
#[tokio::test]
async fn a_service_whose_user_cannot_be_seeded_is_refused_and_not_charged() {
    let db = TestDatabase::sqlite();
    tessera_tests::migrate(db.url());
    let conn = db.connect().await;
    insert_human(&conn, "human-1", "platform@system.local").await;
    let secret = service_secret("platform");
    let server = start(&db, &secret, &[]).await;
    for _ in 0..CALLS {
        let status = verify_as(&server, &secret, &secret)
            .await
            .expect_err("the service user cannot be seeded");
        assert_status(&status, Code::Unauthenticated, None);
    }
    let groups = "SELECT COUNT(*) FROM group_members WHERE user_id = 'human-1'";
    assert_eq!(count(&conn, groups).await, 0, "the human joined Admin");
}

/// Status polls are rate-limited per address; the install token is judged
/// by its failures only, so polls from the same address (a load balancer's
/// checks, say) never keep the right install token out.
#[tokio::test]
async fn status_polls_from_one_address_do_not_refuse_the_right_install_token() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("platform");
    let server = start(&db, &secret, &[("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "3")]).await;
    let token = boot_token(&server).await;
    let mut anonymous = server.client(None).await;
    let mut last = None;
    for _ in 0..CALLS {
        let request = pb::GetInstallTokenStatusRequest {};
        last = anonymous.get_install_token_status(request).await.err();
    }
    let status = last.expect("status polls past the rate are refused");
    assert_status(&status, Code::ResourceExhausted, None);
    consume_as_ada(&server, &token)
        .await
        .expect("the right install token");
}
