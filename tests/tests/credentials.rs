//! The credential lifecycle through the real server and the generated
//! client, on SQLite and PostgreSQL: users mint their own access tokens
//! with bounded lifetimes, list and revoke their own credentials (admins:
//! anybody's), and a revoked or expired credential is refused at once,
//! with its own audit outcome.

use std::time::Duration;

use tessera_client::pb::{self, CredentialKind, PrincipalKind};
use tessera_client::token;
use tessera_client::tonic::Code;
use tessera_tests::audit::{assert_not_in_audit, audit_rows};
use tessera_tests::credentials::{
    WithAdmin, create_access_token, insert_user_with_token, list_all, list_credentials,
    revoke_credential,
};
use tessera_tests::grpc::{provision_workspace, register_workspace, verify_as};
use tessera_tests::{
    ServerOptions, TestDatabase, assert_status, now_seconds, scheduler_secret, seconds,
};

tessera_tests::on_both_backends!(
    open =>
    a_user_creates_lists_and_revokes_its_own_tokens,
    access_tokens_expire_and_their_lifetime_is_bounded,
    who_may_list_and_revoke_what,
    pages_cover_everything_once_despite_a_concurrent_insert,
    the_client_crate_helpers_manage_credentials,
    workspace_tokens_are_recorded_and_revocable,
);

/// The longest lifetime the servers of these tests allow: 100 days.
const MAX_TTL_SECS: u32 = 100 * 86_400;

/// A server with its first admin, Ada, whose token `admin_token` is.
async fn open(db: &TestDatabase) -> WithAdmin {
    let options = ServerOptions::scheduler().envs(&[("TESSERA_ACCESS_TOKEN_MAX_TTL", "100d")]);
    WithAdmin::start(db, options).await
}

fn request(subject: &str, include_revoked: bool) -> pb::ListCredentialsRequest {
    pb::ListCredentialsRequest {
        subject: subject.to_owned(),
        include_revoked,
        ..Default::default()
    }
}

fn ids(credentials: &[pb::CredentialInfo]) -> Vec<&str> {
    credentials
        .iter()
        .map(|c| c.credential_id.as_str())
        .collect()
}

/// Ada mints a named token for herself; it verifies as her, is listed
/// (metadata only) beside the one ConsumeInstallToken gave her, and once
/// revoked it is refused by the very next VerifyBearer, audited as
/// revoked; revoking again returns the first revocation.
async fn a_user_creates_lists_and_revokes_its_own_tokens(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    let created = create_access_token(&mut ada, " laptop ", 0)
        .await
        .expect("create");
    let info = created.credential.clone().expect("credential");
    let token = created.access_token.clone();
    assert_eq!(info.credential_id, token::credential_id("usr", &token));
    assert_eq!(info.kind(), CredentialKind::UserAccess);
    assert_eq!(info.subject, setup.admin_subject);
    assert_eq!(info.name, "laptop");
    assert_eq!(info.created_by, "ada@example.com");
    let lifetime = seconds!(info.expires_at) - seconds!(info.created_at);
    assert!(
        (lifetime - 90.0 * 86_400.0).abs() < 1.0,
        "the default lifetime, 90 days: {lifetime}"
    );

    let verified = verify_as(&setup.server, &scheduler_secret(), &token)
        .await
        .expect("verifies");
    assert_eq!(verified.kind(), PrincipalKind::User);
    assert_eq!(verified.subject, setup.admin_subject);
    assert_eq!(verified.credential_id, info.credential_id);

    let listed = list_all(&mut ada, request(&setup.admin_subject, false))
        .await
        .expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[1].credential_id, info.credential_id);
    assert_eq!(
        listed[0].credential_id,
        token::credential_id("usr", &setup.admin_token)
    );

    let revoked = revoke_credential(&mut ada, &info.credential_id)
        .await
        .expect("revoke");
    assert!(revoked.revoked_at.is_some());
    let status = verify_as(&setup.server, &scheduler_secret(), &token)
        .await
        .expect_err("refused once revoked");
    assert_status(&status, Code::Unauthenticated, None);
    let status = create_access_token(&mut setup.server.client(Some(&token)).await, "x", 0)
        .await
        .expect_err("a revoked token is no caller credential either");
    assert_status(&status, Code::Unauthenticated, None);

    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = revoke_credential(&mut ada, &info.credential_id)
        .await
        .expect("revoking twice is not an error");
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "the first revocation stays"
    );

    let live = list_all(&mut ada, request(&setup.admin_subject, false))
        .await
        .expect("list");
    assert_eq!(ids(&live), vec![listed[0].credential_id.as_str()]);
    let all = list_all(&mut ada, request(&setup.admin_subject, true))
        .await
        .expect("list");
    assert_eq!(all.len(), 2);

    let audit = audit_rows(&setup.conn().await).await;
    let refused = audit
        .iter()
        .find(|row| row.action == "bearer.verify" && row.resource == info.credential_id);
    assert_eq!(
        refused.map(|row| row.outcome.as_str()),
        Some("revoked credential")
    );
    assert!(audit.iter().any(|row| row.action == "access_token.create"
        && row.resource == info.credential_id
        && row.outcome == "ok"));
    assert!(
        audit
            .iter()
            .any(|row| row.action == "credential.revoke" && row.resource == info.credential_id)
    );
    assert_not_in_audit(&audit, &[&token, &token::sha256_hex(&token)]);
    let listing = format!("{all:?}");
    assert!(!listing.contains(&token) && !listing.contains(&token::sha256_hex(&token)));
}

/// A lifetime above the maximum is refused; a short one ends, after which
/// the token is refused as expired (audited so); the first admin's token
/// got the default lifetime.
async fn access_tokens_expire_and_their_lifetime_is_bounded(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    let status = create_access_token(&mut ada, "long", MAX_TTL_SECS + 1)
        .await
        .expect_err("above the maximum");
    assert_status(&status, Code::InvalidArgument, None);
    let status = create_access_token(&mut ada, "bad\u{0}name", 60)
        .await
        .expect_err("a control character");
    assert_status(&status, Code::InvalidArgument, None);

    let short = create_access_token(&mut ada, "short", 1)
        .await
        .expect("create");
    let token = short.access_token;
    verify_as(&setup.server, &scheduler_secret(), &token)
        .await
        .expect("valid at first");
    let credential = short.credential.expect("credential");
    let expires_at = seconds!(credential.expires_at);
    tokio::time::sleep(Duration::from_secs_f64(
        (expires_at - now_seconds()).max(0.0) + 0.2,
    ))
    .await;
    let status = verify_as(&setup.server, &scheduler_secret(), &token)
        .await
        .expect_err("expired");
    assert_status(&status, Code::Unauthenticated, None);
    let audit = audit_rows(&setup.conn().await).await;
    let id = token::credential_id("usr", &token);
    assert!(
        audit
            .iter()
            .any(|row| row.resource == id && row.outcome == "expired credential"),
        "{audit:?}"
    );

    let expired_too = pb::ListCredentialsRequest {
        subject: setup.admin_subject.clone(),
        include_expired: true,
        ..Default::default()
    };
    let listed = list_all(&mut ada, expired_too).await.expect("list");
    assert_eq!(listed.len(), 2);
    let live = list_all(&mut ada, request(&setup.admin_subject, false))
        .await
        .expect("list");
    assert_eq!(
        ids(&live),
        vec![listed[0].credential_id.as_str()],
        "expired ones hidden"
    );
    let first = &listed[0];
    let lifetime = seconds!(first.expires_at) - seconds!(first.created_at);
    assert!(
        (lifetime - 90.0 * 86_400.0).abs() < 1.0,
        "default 90 days: {lifetime}"
    );
}

/// The policy table and the ownership rules: a plain user sees and revokes
/// only its own (another's id is NOT_FOUND); a service mints no access
/// token; a workspace lists nothing; an admin sees and revokes anybody's;
/// a service secret cannot be revoked here.
async fn who_may_list_and_revoke_what(setup: WithAdmin) {
    let conn = setup.conn().await;
    let bob_token = insert_user_with_token(&conn, "bob", "bob@example.com", None).await;
    let bob_id = token::credential_id("usr", &bob_token);
    let ada_id = token::credential_id("usr", &setup.admin_token);
    let mut bob = setup.server.client(Some(&bob_token)).await;

    let own = list_all(&mut bob, request("", false)).await.expect("own");
    assert_eq!(ids(&own), vec![bob_id.as_str()]);
    let status = list_credentials(&mut bob, request(&setup.admin_subject, false))
        .await
        .expect_err("another user's");
    assert_status(&status, Code::PermissionDenied, None);
    let status = revoke_credential(&mut bob, &ada_id)
        .await
        .expect_err("not his");
    assert_status(&status, Code::NotFound, None);
    create_access_token(&mut bob, "own", 60)
        .await
        .expect("a user mints for itself");

    let mut service = setup.server.scheduler().await;
    let status = create_access_token(&mut service, "svc", 0)
        .await
        .expect_err("a service never mints a user credential");
    assert_status(&status, Code::PermissionDenied, None);
    let everybody = list_all(&mut service, request("", false))
        .await
        .expect("admin lists all");
    assert!(ids(&everybody).contains(&bob_id.as_str()));
    assert!(ids(&everybody).contains(&ada_id.as_str()));
    let bobs = list_all(&mut service, request("bob", false))
        .await
        .expect("by subject");
    assert_eq!(bobs.len(), 2);
    assert!(bobs.iter().all(|c| c.subject == "bob"));

    let status = revoke_credential(&mut service, "usr_0000000000000000")
        .await
        .expect_err("unknown");
    assert_status(&status, Code::NotFound, None);
    let service_id = token::credential_id("svc", &scheduler_secret());
    let status = revoke_credential(&mut service, &service_id)
        .await
        .expect_err("a service secret");
    assert_status(&status, Code::FailedPrecondition, None);
    revoke_credential(&mut service, &bob_id)
        .await
        .expect("an admin revokes anybody's");
    let status = list_credentials(&mut bob, request("", false))
        .await
        .expect_err("bob's token is revoked");
    assert_status(&status, Code::Unauthenticated, None);

    let mut ada = setup.admin().await;
    let ws = provision_workspace(&mut ada, "ws-policy", "")
        .await
        .expect("provision");
    let mut runtime = setup.server.client(Some(&ws.registration_token)).await;
    let status = list_credentials(&mut runtime, request("", false))
        .await
        .expect_err("a workspace lists nothing");
    assert_status(&status, Code::PermissionDenied, None);
    let status = create_access_token(&mut runtime, "ws", 0)
        .await
        .expect_err("nor mints access tokens");
    assert_status(&status, Code::PermissionDenied, None);
}

/// Paging by three over more than three pages sees every credential once,
/// in (created_at, id) order, even with one created between two pages; a
/// page token is refused with other filters.
async fn pages_cover_everything_once_despite_a_concurrent_insert(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    for i in 0..9 {
        create_access_token(&mut ada, &format!("t{i}"), 60)
            .await
            .expect("create");
    }
    let mut page_request = pb::ListCredentialsRequest {
        page_size: 3,
        kind: CredentialKind::UserAccess.into(),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut late = None;
    loop {
        let page = list_credentials(&mut ada, page_request.clone())
            .await
            .expect("page");
        assert!(page.credentials.len() <= 3);
        pages += 1;
        seen.extend(page.credentials);
        if pages == 2 {
            let created = create_access_token(&mut ada, "late", 60)
                .await
                .expect("create");
            late = created.credential.map(|c| c.credential_id);
            let other_filter = pb::ListCredentialsRequest {
                include_revoked: true,
                ..page_request.clone()
            };
            let other_filter = pb::ListCredentialsRequest {
                page_token: page.next_page_token.clone(),
                ..other_filter
            };
            let status = list_credentials(&mut ada, other_filter)
                .await
                .expect_err("a page token of other filters");
            assert_status(&status, Code::InvalidArgument, None);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_request.page_token = page.next_page_token;
    }
    assert!(pages > 3, "{pages} pages");
    assert_eq!(seen.len(), 11, "the admin's, nine and the late one");
    let late = late.expect("late id");
    assert_eq!(seen.iter().filter(|c| c.credential_id == late).count(), 1);
    let keys: Vec<(f64, String)> = seen
        .iter()
        .map(|c| (seconds!(c.created_at), c.credential_id.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    assert_eq!(keys, sorted, "ordered by (created_at, id)");
}

/// Workspace tokens have records: the registration token from provision,
/// the auth token from the first registration; a reissued auth token's
/// predecessor shows revoked; revoking the auth token refuses it at once
/// and the next registration issues a fresh one; a revoked registration
/// token registers no more.
async fn workspace_tokens_are_recorded_and_revocable(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    let ws = provision_workspace(&mut ada, "ws-1", "")
        .await
        .expect("provision");
    let server = &setup.server;
    let first = register_workspace(server, &ws.registration_token, "ws-1", false)
        .await
        .expect("register");
    let first_auth = first.auth_token.expect("first auth token");
    let second = register_workspace(server, &first_auth, "ws-1", true)
        .await
        .expect("reissue");
    let second_auth = second.auth_token.expect("second auth token");

    let listed = list_all(&mut ada, request("ws-1", true))
        .await
        .expect("list");
    let kinds: Vec<(CredentialKind, bool)> = listed
        .iter()
        .map(|c| (c.kind(), c.revoked_at.is_some()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (CredentialKind::WorkspaceRegistration, false),
            (CredentialKind::WorkspaceAuth, true),
            (CredentialKind::WorkspaceAuth, false),
        ]
    );
    assert_eq!(
        listed[2].credential_id,
        token::credential_id("wsa", &second_auth)
    );

    revoke_credential(&mut ada, &listed[2].credential_id)
        .await
        .expect("revoke auth");
    let status = verify_as(server, &scheduler_secret(), &second_auth)
        .await
        .expect_err("revoked auth token");
    assert_status(&status, Code::Unauthenticated, None);
    let again = register_workspace(server, &ws.registration_token, "ws-1", false)
        .await
        .expect("register with the registration token");
    let fresh = again
        .auth_token
        .expect("a fresh auth token after the revocation");
    verify_as(server, &scheduler_secret(), &fresh)
        .await
        .expect("fresh one verifies");

    revoke_credential(&mut ada, &listed[0].credential_id)
        .await
        .expect("revoke registration");
    let status = register_workspace(server, &ws.registration_token, "ws-1", false)
        .await
        .expect_err("revoked registration token");
    assert_status(&status, Code::Unauthenticated, None);
}

/// The typed helpers of `tessera-client`: mint, list every page, revoke.
async fn the_client_crate_helpers_manage_credentials(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    let (token, info) = ada
        .mint_access_token("embedder", Duration::from_secs(600))
        .await
        .expect("mint");
    assert_eq!(
        info.credential_id,
        token::credential_id("usr", token.expose())
    );
    assert!(
        !format!("{token:?}").contains(token.expose()),
        "Debug is redacted"
    );
    let filter = pb::ListCredentialsRequest {
        page_size: 1,
        subject: setup.admin_subject.clone(),
        ..Default::default()
    };
    let all = ada.all_credentials(filter).await.expect("list");
    assert_eq!(
        ids(&all),
        vec![
            token::credential_id("usr", &setup.admin_token),
            info.credential_id.clone()
        ]
    );
    let revoked = ada.revoke(&info.credential_id).await.expect("revoke");
    assert!(revoked.revoked_at.is_some());
    let status = ada
        .revoke("usr_0000000000000000")
        .await
        .expect_err("unknown");
    assert_status(&status, Code::NotFound, None);
    let status = ada
        .mint_access_token("too long", Duration::from_secs(u64::from(u32::MAX) + 1))
        .await
        .expect_err("does not fit");
    assert_status(&status, Code::InvalidArgument, None);
}
