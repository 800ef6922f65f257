//! Workspace auth-token rotation on one replica, seen at once on the others.

use std::time::Instant;

use tessera_client::Client;
use tessera_client::pb::{self, PrincipalKind};
use tessera_client::tonic::Code;
use tessera_tests::grpc::{provision_workspace, register_workspace, verify_bearer};
use tessera_tests::secrets::assert_not_logged;
use tessera_tests::{TestServer, assert_status};

use super::{REPLICAS, one_at_a_time, postgres, replicas, schedulers};

const WORKSPACE: &str = "ws-replicated";

/// `token` verifies on `admin`'s replica as the workspace.
async fn assert_workspace_token(admin: &mut Client, token: &str, what: &str) {
    let principal = verify_bearer(admin, token)
        .await
        .unwrap_or_else(|s| panic!("{what}: {s:?}"));
    assert_eq!(principal.kind(), PrincipalKind::Workspace);
    assert_eq!(principal.subject, WORKSPACE);
}

/// On replica `other`, at once: the rotated-out token `old` is refused by
/// VerifyBearer and as a runtime bearer, `current` verifies, and the
/// inbound secret is unchanged.
async fn assert_rotation_seen(
    server: &TestServer,
    admin: &mut Client,
    old: &str,
    current: &str,
    inbound: &str,
) {
    let status = verify_bearer(admin, old)
        .await
        .expect_err("the rotated-out token");
    assert_status(&status, Code::Unauthenticated, None);
    assert_workspace_token(admin, current, "the new token on another replica").await;
    let status = register_workspace(server, old, WORKSPACE, false)
        .await
        .expect_err("the rotated-out token as a runtime bearer");
    assert_status(&status, Code::Unauthenticated, None);
    let secret = admin
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: WORKSPACE.to_owned(),
        })
        .await
        .expect("inbound secret")
        .into_inner();
    assert_eq!(secret.platform_inbound_secret.as_deref(), Some(inbound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workspace_auth_token_rotation_on_one_replica_is_seen_at_once_by_the_others() {
    const ROTATIONS: usize = 9;
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let servers = replicas(&db).await;
    let mut admins = schedulers(&servers).await;

    let provisioned = provision_workspace(&mut admins[0], WORKSPACE, "Replicated")
        .await
        .expect("provision on A");
    let registration = provisioned.registration_token.clone();
    let inbound = provisioned.platform_inbound_secret.clone();
    let first = register_workspace(&servers[0], &registration, WORKSPACE, false)
        .await
        .expect("first registration on A");
    let mut current = first.auth_token.expect("auth token on first registration");
    for admin in &mut admins {
        assert_workspace_token(admin, &current, "verifies everywhere").await;
    }

    let started = Instant::now();
    let mut retired = Vec::new();
    for rotation in 0..ROTATIONS {
        let on = rotation % REPLICAS;
        // Alternate the bearer: the current auth token, or the registration
        // token (a runtime whose config directory came back empty).
        let bearer = if rotation % 2 == 0 {
            current.clone()
        } else {
            registration.clone()
        };
        let rotated = register_workspace(&servers[on], &bearer, WORKSPACE, true)
            .await
            .unwrap_or_else(|s| panic!("rotation {rotation} on replica {on}: {s:?}"));
        assert_eq!(rotated.platform_inbound_secret.as_deref(), Some(&*inbound));
        let new = rotated.auth_token.expect("reissue returns a new token");
        assert_ne!(new, current);
        let old = std::mem::replace(&mut current, new);
        // At once, with no pause, on the other replicas.
        for other in (0..REPLICAS).filter(|&r| r != on) {
            assert_rotation_seen(
                &servers[other],
                &mut admins[other],
                &old,
                &current,
                &inbound,
            )
            .await;
        }
        retired.push(old);
    }
    eprintln!(
        "replicas: {ROTATIONS} auth-token rotations, each checked at once on the other two \
         replicas, in {:.2?}",
        started.elapsed()
    );

    // Every retired token stays refused on every replica; the last one works.
    for admin in &mut admins {
        for old in &retired {
            let status = verify_bearer(admin, old).await.expect_err("retired");
            assert_status(&status, Code::Unauthenticated, None);
        }
        verify_bearer(admin, &current).await.expect("current");
    }
    let mut secrets: Vec<&str> = retired.iter().map(String::as_str).collect();
    secrets.extend([current.as_str(), registration.as_str(), inbound.as_str()]);
    for server in &servers {
        assert_not_logged(server, &secrets);
    }
}
