//! ReissueRegistrationToken and DeleteWorkspace: what they refuse at once,
//! what they keep, who may call them, and what they leave in the audit log
//! and the credential records.

use tessera_client::Client;
use tessera_client::pb;
use tessera_client::tonic::Code;
use tessera_tests::audit::audit_rows;
use tessera_tests::credentials::{WithAdmin, list_all};
use tessera_tests::grpc::{provision_workspace, register_workspace, verify_bearer};
use tessera_tests::workspaces::{
    delete_workspace, get_inbound_secret, reissue_registration_token, rotate_inbound_secret,
};
use tessera_tests::{ServerOptions, TestDatabase, assert_status};

tessera_tests::on_both_backends!(
    open =>
    a_reissued_registration_token_replaces_the_old_one_at_once,
    reissue_can_revoke_the_auth_tokens_too,
    a_deleted_workspace_leaves_no_credential_and_no_secret,
    only_admins_reissue_and_delete,
);

/// Every credential of `subject`, revoked ones included.
async fn records(admin: &mut Client, subject: &str) -> Vec<pb::CredentialInfo> {
    let request = pb::ListCredentialsRequest {
        subject: subject.to_owned(),
        include_revoked: true,
        ..Default::default()
    };
    list_all(admin, request).await.expect("list")
}

async fn open(db: &TestDatabase) -> WithAdmin {
    WithAdmin::start(db, ServerOptions::scheduler()).await
}

/// Provisions and registers `id`: its registration token and auth token.
async fn registered(setup: &WithAdmin, admin: &mut Client, id: &str) -> (String, String) {
    let provisioned = provision_workspace(admin, id, "").await.expect("provision");
    let registration = provisioned.registration_token;
    let auth = register_workspace(&setup.server, &registration, id, false)
        .await
        .expect("register")
        .auth_token
        .expect("auth token");
    (registration, auth)
}

async fn audited(setup: &WithAdmin, action: &str) -> Vec<String> {
    let rows = audit_rows(&setup.conn().await).await;
    rows.into_iter()
        .filter(|row| row.action == action)
        .map(|row| row.outcome)
        .collect()
}

async fn a_reissued_registration_token_replaces_the_old_one_at_once(setup: WithAdmin) {
    let mut admin = setup.server.scheduler().await;
    let (old, auth) = registered(&setup, &mut admin, "ws").await;
    let reissued = reissue_registration_token(&mut admin, "ws", false)
        .await
        .expect("reissue");
    assert_eq!(reissued.revoked, 1, "the old registration token");
    let new = reissued.registration_token;
    assert!(new.starts_with("tsr_wsr_"));
    let record = reissued.credential.expect("its record");
    assert_eq!(record.kind(), pb::CredentialKind::WorkspaceRegistration);
    assert_eq!(record.subject, "ws");

    let refused = register_workspace(&setup.server, &old, "ws", false)
        .await
        .expect_err("the old registration token");
    assert_status(&refused, Code::Unauthenticated, None);
    // The new one recovers a runtime; the auth token was kept.
    verify_bearer(&mut admin, &auth)
        .await
        .expect("auth token kept");
    let recovered = register_workspace(&setup.server, &new, "ws", true)
        .await
        .expect("the new registration token");
    assert!(recovered.auth_token.is_some());

    let listed = records(&mut admin, "ws").await;
    let old_id = tessera_client::token::credential_id("wsr", &old);
    let old_record = listed.iter().find(|c| c.credential_id == old_id);
    assert!(old_record.expect("still listed").revoked_at.is_some());
    assert_eq!(
        audited(&setup, "workspace.reissue_registration_token").await,
        ["ok"]
    );

    let missing = reissue_registration_token(&mut admin, "nope", false)
        .await
        .expect_err("unknown");
    assert_status(&missing, Code::NotFound, None);
}

async fn reissue_can_revoke_the_auth_tokens_too(setup: WithAdmin) {
    let mut admin = setup.server.scheduler().await;
    let (_, auth) = registered(&setup, &mut admin, "ws").await;
    let reissued = reissue_registration_token(&mut admin, "ws", true)
        .await
        .expect("reissue");
    assert_eq!(reissued.revoked, 2, "registration and auth token");
    let refused = verify_bearer(&mut admin, &auth)
        .await
        .expect_err("auth token revoked");
    assert_status(&refused, Code::Unauthenticated, None);
    let refused = register_workspace(&setup.server, &auth, "ws", false)
        .await
        .expect_err("cannot register either");
    assert_status(&refused, Code::Unauthenticated, None);
    // The runtime recovers with the new registration token: a new auth
    // token, without asking for a reissue.
    let recovered = register_workspace(&setup.server, &reissued.registration_token, "ws", false)
        .await
        .expect("register");
    let fresh = recovered.auth_token.expect("a fresh auth token");
    verify_bearer(&mut admin, &fresh)
        .await
        .expect("fresh token");
}

async fn a_deleted_workspace_leaves_no_credential_and_no_secret(setup: WithAdmin) {
    let mut admin = setup.server.scheduler().await;
    let (registration, auth) = registered(&setup, &mut admin, "ws").await;
    let (_, other_auth) = registered(&setup, &mut admin, "ws-other").await;
    rotate_inbound_secret(&mut admin, "ws", false)
        .await
        .expect("a rotation in flight");

    let deleted = delete_workspace(&mut admin, "ws").await.expect("delete");
    assert_eq!(deleted.revoked, 2);
    let refused = verify_bearer(&mut admin, &auth).await.expect_err("auth");
    assert_status(&refused, Code::Unauthenticated, None);
    for bearer in [&registration, &auth] {
        let refused = register_workspace(&setup.server, bearer, "ws", true)
            .await
            .expect_err("no registration");
        assert_status(&refused, Code::Unauthenticated, None);
    }
    let gone = get_inbound_secret(&mut admin, "ws")
        .await
        .expect_err("gone");
    assert_status(&gone, Code::NotFound, None);
    let conn = setup.conn().await;
    let rows = tessera_tests::sql::count(&conn, "SELECT COUNT(*) FROM workspaces WHERE id = 'ws'");
    assert_eq!(rows.await, 0, "row and secrets removed");
    // Its records stay, revoked, until the retention prunes them.
    let listed = records(&mut admin, "ws").await;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|c| c.revoked_at.is_some()));
    // Other workspaces are untouched; the id can be provisioned again.
    verify_bearer(&mut admin, &other_auth).await.expect("other");
    provision_workspace(&mut admin, "ws", "")
        .await
        .expect("provisioned again");
    assert_eq!(audited(&setup, "workspace.delete").await, ["ok"]);

    let again = delete_workspace(&mut admin, "nope")
        .await
        .expect_err("unknown");
    assert_status(&again, Code::NotFound, None);
}

async fn only_admins_reissue_and_delete(setup: WithAdmin) {
    let mut admin = setup.server.scheduler().await;
    let (_, auth) = registered(&setup, &mut admin, "ws").await;
    let (_, user_token) = setup.user("bob@example.com", &[]).await;
    let mut bob = setup.server.client(Some(&user_token)).await;
    let mut runtime = setup.server.client(Some(&auth)).await;
    for caller in [&mut bob, &mut runtime] {
        let reissue = reissue_registration_token(caller, "ws", true).await;
        assert_status(&reissue.expect_err("refused"), Code::PermissionDenied, None);
        let delete = delete_workspace(caller, "ws").await;
        assert_status(&delete.expect_err("refused"), Code::PermissionDenied, None);
        let rotate = rotate_inbound_secret(caller, "ws", false).await;
        assert_status(&rotate.expect_err("refused"), Code::PermissionDenied, None);
    }
    let mut ada = setup.admin().await;
    reissue_registration_token(&mut ada, "ws", false)
        .await
        .expect("an admin user may");
    verify_bearer(&mut admin, &auth).await.expect("still there");
}
