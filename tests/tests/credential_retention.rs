//! Credential hygiene through the real server: records of revoked or
//! expired credentials are pruned `TESSERA_CREDENTIAL_RETENTION` after they
//! ended (never a token its workspace still holds), and the gauge
//! `tessera_credentials_expiring` counts the live ones expiring within a
//! week.

use std::time::{Duration, Instant};

use tessera_client::Client;
use tessera_client::pb;
use tessera_client::tonic::Code;
use tessera_tests::credentials::{create_access_token, list_all, revoke_credential};
use tessera_tests::grpc::{provision_workspace, register_workspace};
use tessera_tests::install::bootstrap_admin;
use tessera_tests::metrics::{metrics_addr, sample, scrape};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status};

tessera_tests::on_both_backends!(open => ended_records_go_after_the_retention);

async fn open(db: &TestDatabase) -> (TestServer, Client) {
    let options = ServerOptions::scheduler().envs(&[
        ("TESSERA_CREDENTIAL_RETENTION", "1s"),
        ("TESSERA_REAPER_INTERVAL_MS", "200"),
    ]);
    let server = TestServer::start(db, options).await;
    let admin_token = bootstrap_admin(&server).await.admin_token;
    let admin = server.client(Some(&admin_token)).await;
    (server, admin)
}

/// The ids of every credential, revoked and expired ones included.
async fn listed(admin: &mut Client) -> Vec<String> {
    let request = pb::ListCredentialsRequest {
        include_revoked: true,
        include_expired: true,
        ..Default::default()
    };
    let all = list_all(admin, request).await.expect("list");
    all.into_iter().map(|c| c.credential_id).collect()
}

async fn ended_records_go_after_the_retention((server, mut ada): (TestServer, Client)) {
    let created = create_access_token(&mut ada, "old", 0)
        .await
        .expect("create");
    let old = created.credential.expect("credential").credential_id;
    revoke_credential(&mut ada, &old).await.expect("revoke");
    let ws = provision_workspace(&mut ada, "ws-kept", "")
        .await
        .expect("provision");
    let registered = register_workspace(&server, &ws.registration_token, "ws-kept", false)
        .await
        .expect("register");
    let auth = registered.auth_token.expect("auth token");
    let token_id = |tag, token: &str| tessera_client::token::credential_id(tag, token);
    let (registration_id, auth_id) = (
        token_id("wsr", &ws.registration_token),
        token_id("wsa", &auth),
    );
    revoke_credential(&mut ada, &registration_id)
        .await
        .expect("revoke");
    revoke_credential(&mut ada, &auth_id).await.expect("revoke");
    // Revoked last: once its record is gone, the others are past the
    // retention too.
    let created = create_access_token(&mut ada, "old", 0)
        .await
        .expect("create");
    let old = created.credential.expect("credential").credential_id;
    revoke_credential(&mut ada, &old).await.expect("revoke");

    let started = Instant::now();
    while listed(&mut ada).await.contains(&old) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a revoked token's record outlived its retention"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = listed(&mut ada).await;
    assert!(!left.contains(&auth_id), "the revoked auth token is pruned");
    assert!(
        left.contains(&registration_id),
        "the registration token its workspace holds stays"
    );
    let status = register_workspace(&server, &ws.registration_token, "ws-kept", false)
        .await
        .expect_err("still refused");
    assert_status(&status, Code::Unauthenticated, None);
}

/// Live access tokens expiring within a week are counted; revoked ones,
/// later ones and the first admin's (90 days) are not.
#[tokio::test]
async fn tokens_about_to_expire_are_counted() {
    let db = TestDatabase::sqlite();
    let options = ServerOptions::scheduler().envs(&[
        ("TESSERA_METRICS_LISTEN", "127.0.0.1:0"),
        ("TESSERA_REAPER_INTERVAL_MS", "200"),
    ]);
    let server = TestServer::start(&db, options).await;
    let addr = metrics_addr(&server).await;
    let admin_token = bootstrap_admin(&server).await.admin_token;
    let mut ada = server.client(Some(&admin_token)).await;
    let day = 86_400;
    for (name, ttl) in [("a", day), ("b", 3 * day), ("c", 30 * day), ("d", 2 * day)] {
        let created = create_access_token(&mut ada, name, ttl).await.expect(name);
        if name == "d" {
            let id = created.credential.expect("credential").credential_id;
            revoke_credential(&mut ada, &id).await.expect("revoke");
        }
    }
    // Three reaper periods: the gauge is refreshed after the last change.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let text = scrape(addr);
    let series = |kind| format!("tessera_credentials_expiring{{kind=\"{kind}\"}}");
    assert!(text.contains(&series("user_access")), "{text}");
    assert_eq!(sample(&text, &series("user_access")), 2.0, "{text}");
    assert_eq!(sample(&text, &series("workspace_auth")), 0.0);
    assert!(text.contains(&series("workspace_registration")), "{text}");
}
