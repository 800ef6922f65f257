//! A credential revoked through one replica is refused by the others on
//! their very next call: no replica caches a lookup past a revocation.

use tessera_client::tonic::Code;
use tessera_tests::assert_status;
use tessera_tests::credentials::{create_access_token, revoke_credential};
use tessera_tests::grpc::{
    consume_ticket, internal_credential, provision_workspace, register_workspace, verify_bearer,
};
use tessera_tests::install::{consume_as_ada, token_in_banner, wait_for_banners};

use super::{one_at_a_time, postgres, replicas, schedulers};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_through_one_replica_is_refused_by_the_others_at_once() {
    const ROUNDS: usize = 5;
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let servers = replicas(&db).await;
    let mut services = schedulers(&servers).await;
    let all_stdout = || servers.iter().map(|s| s.stdout()).collect::<String>();
    let install_token = token_in_banner(&wait_for_banners(all_stdout, 1).await);
    let admin = consume_as_ada(&servers[0], &install_token)
        .await
        .expect("the first admin");
    let mut ada = servers[0].client(Some(&admin.admin_token)).await;

    for round in 0..ROUNDS {
        let created = create_access_token(&mut ada, &format!("round-{round}"), 600)
            .await
            .expect("create");
        let token = created.access_token;
        let id = created.credential.expect("credential").credential_id;
        // Every replica has looked the token up (and would have cached it).
        for service in services.iter_mut() {
            verify_bearer(service, &token)
                .await
                .expect("valid everywhere");
        }
        let revoker = round % servers.len();
        revoke_credential(&mut services[revoker], &id)
            .await
            .expect("revoke");
        for (i, service) in services.iter_mut().enumerate() {
            let status = verify_bearer(service, &token)
                .await
                .expect_err("refused on the very next call");
            assert_status(&status, Code::Unauthenticated, None);
            let mut as_user = servers[i].client(Some(&token)).await;
            let status = create_access_token(&mut as_user, "x", 60)
                .await
                .expect_err("no caller credential either");
            assert_status(&status, Code::Unauthenticated, None);
        }
    }

    // A workspace auth token too.
    let ws = provision_workspace(&mut services[0], "ws-revoked", "")
        .await
        .expect("provision");
    let registered = register_workspace(&servers[1], &ws.registration_token, "ws-revoked", false)
        .await
        .expect("register");
    let auth = registered.auth_token.expect("auth token");
    for service in services.iter_mut() {
        verify_bearer(service, &auth)
            .await
            .expect("valid everywhere");
    }
    let id = tessera_client::token::credential_id("wsa", &auth);
    revoke_credential(&mut services[2], &id)
        .await
        .expect("revoke");
    for service in services.iter_mut() {
        let status = verify_bearer(service, &auth).await.expect_err("refused");
        assert_status(&status, Code::Unauthenticated, None);
    }

    // And a process's internal credential: refused by all three at once,
    // its own process included.
    let internal = internal_credential(&mut services[0]).await.expect("mint");
    for service in services.iter_mut() {
        consume_ticket(service, &internal, "")
            .await
            .expect("valid everywhere");
    }
    let id = tessera_client::token::credential_id("int", &internal);
    revoke_credential(&mut services[1], &id)
        .await
        .expect("revoke");
    for service in services.iter_mut() {
        let status = consume_ticket(service, &internal, "")
            .await
            .expect_err("refused");
        assert_status(&status, Code::Unauthenticated, None);
    }
}
