//! The workspace lifecycle across replicas: an inbound-secret rotation
//! confirmed through one replica is what every replica hands the platform,
//! a reissued registration token is refused by every replica at once, and
//! so is every credential of a deleted workspace.

use tessera_client::tonic::Code;
use tessera_tests::assert_status;
use tessera_tests::grpc::{provision_workspace, register_workspace, verify_bearer};
use tessera_tests::workspaces::{
    delete_workspace, get_inbound_secret, platform_secret, register_holding,
    reissue_registration_token, rotate_inbound_secret,
};

use super::{one_at_a_time, postgres, replicas, schedulers};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_reissue_and_delete_hold_on_every_replica() {
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let servers = replicas(&db).await;
    let mut admins = schedulers(&servers).await;
    let provisioned = provision_workspace(&mut admins[0], "ws", "")
        .await
        .expect("provision");
    let old_registration = provisioned.registration_token;
    let auth = register_workspace(&servers[1], &old_registration, "ws", false)
        .await
        .expect("register")
        .auth_token
        .expect("auth token");

    // Rotation: started on 0, learned and confirmed on 1 and 2, read on all.
    let old_secret = provisioned.platform_inbound_secret;
    let started = rotate_inbound_secret(&mut admins[0], "ws", false)
        .await
        .expect("rotate");
    let learned = register_holding(&servers[1], &auth, "ws", "")
        .await
        .expect("learn");
    let next = learned.next_platform_inbound_secret.expect("next");
    for admin in admins.iter_mut() {
        assert_eq!(
            platform_secret(admin, "ws").await,
            old_secret,
            "unconfirmed"
        );
    }
    register_holding(&servers[2], &auth, "ws", &started.next_inbound_secret_id)
        .await
        .expect("confirm");
    for admin in admins.iter_mut() {
        assert_eq!(platform_secret(admin, "ws").await, next, "confirmed");
    }

    // Reissue on 2: the old registration token is refused everywhere at once.
    let reissued = reissue_registration_token(&mut admins[2], "ws", false)
        .await
        .expect("reissue");
    for server in &servers {
        let refused = register_workspace(server, &old_registration, "ws", false)
            .await
            .expect_err("old registration token");
        assert_status(&refused, Code::Unauthenticated, None);
        register_workspace(server, &reissued.registration_token, "ws", false)
            .await
            .expect("the new one");
    }
    for admin in admins.iter_mut() {
        verify_bearer(admin, &auth).await.expect("auth token kept");
    }

    // Delete on 1: nothing of the workspace works anywhere at once.
    delete_workspace(&mut admins[1], "ws")
        .await
        .expect("delete");
    for (server, admin) in servers.iter().zip(admins.iter_mut()) {
        let refused = verify_bearer(admin, &auth).await.expect_err("auth token");
        assert_status(&refused, Code::Unauthenticated, None);
        let refused = register_workspace(server, &reissued.registration_token, "ws", true)
            .await
            .expect_err("registration token");
        assert_status(&refused, Code::Unauthenticated, None);
        let gone = get_inbound_secret(admin, "ws")
            .await
            .expect_err("secret gone");
        assert_status(&gone, Code::NotFound, None);
    }
}
