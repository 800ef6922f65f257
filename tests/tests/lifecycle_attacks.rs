//! What an outside attack on the credential lifecycle found, each kept as
//! a test, on SQLite and PostgreSQL: a user minting tokens while it is
//! being disabled keeps none; concurrent invitations never fail for
//! another write; a token pasted where an id belongs is neither stored nor
//! echoed; a service user is not "disabled" for show; a forged page token
//! is refused, not an internal error.

use tessera_client::pb::{self, CredentialKind};
use tessera_client::token;
use tessera_client::tonic::Code;
use tessera_tests::audit::{assert_not_in_audit, audit_rows};
use tessera_tests::credentials::accept_invite;
use tessera_tests::credentials::{
    WithAdmin, create_access_token, invite_user, list_all, list_credentials, revoke_credential,
    revoke_subject,
};
use tessera_tests::grpc::{
    provision_workspace, register_workspace, released_together, verify_bearer,
};
use tessera_tests::{ServerOptions, TestDatabase, assert_status, scheduler_secret};

tessera_tests::on_both_backends!(
    open =>
    tokens_minted_during_a_disable_are_all_revoked,
    concurrent_invitations_all_succeed,
    a_token_sent_as_an_id_is_refused_and_never_recorded,
    a_service_user_is_not_disabled_for_show,
    a_forged_page_token_is_invalid,
    a_redemption_racing_a_disable_neither_deadlocks_nor_survives,
    tokens_minted_during_a_revocation_are_revoked_too,
    a_registration_racing_a_revocation_keeps_no_auth_token,
    a_token_anywhere_in_an_id_is_refused_and_never_recorded,
    a_service_secret_sent_as_an_id_is_refused_and_never_recorded,
);

/// An operator-chosen service secret (not in Tessera's token format).
const ALPHA_SECRET: &str = "alpha-secret-chosen-by-an-operator-0123456789";

async fn open(db: &TestDatabase) -> WithAdmin {
    WithAdmin::start(
        db,
        ServerOptions::scheduler().service("ALPHA", ALPHA_SECRET),
    )
    .await
}

/// Twenty CreateAccessToken calls of Bob racing the RevokeSubject that
/// disables him: whatever won, none of his tokens is live afterwards, so
/// enabling him again brings none back.
async fn tokens_minted_during_a_disable_are_all_revoked(setup: WithAdmin) {
    mint_while_revoking(&setup, true).await;
}

/// Twenty tokens minted by Bob while an admin revokes all of Bob's
/// credentials (without disabling him): every token that exists afterwards
/// is revoked, and the token he minted with refuses to mint more.
async fn tokens_minted_during_a_revocation_are_revoked_too(setup: WithAdmin) {
    mint_while_revoking(&setup, false).await;
}

/// Bob mints twenty access tokens at the moment RevokeSubject (disabling
/// him or not) takes everything of his back: none of his is live after.
async fn mint_while_revoking(setup: &WithAdmin, disable: bool) {
    const MINTS: usize = 20;
    let (bob, bob_token) = setup.user("bob@example.com", &[]).await;
    let mut clients = Vec::new();
    for _ in 0..MINTS {
        clients.push(setup.server.client(Some(&bob_token)).await);
    }
    let admin = setup.admin().await;
    let results = released_together(MINTS + 1, |i| {
        let (mut admin, bob) = (admin.clone(), bob.clone());
        let mut client = clients.get(i).cloned();
        async move {
            match client.as_mut() {
                Some(client) => create_access_token(client, &format!("m{i}"), 0)
                    .await
                    .map(drop),
                None => revoke_subject(&mut admin, &bob, disable).await.map(drop),
            }
        }
    })
    .await;
    assert!(
        results[MINTS].is_ok(),
        "the revocation: {:?}",
        results[MINTS]
    );
    let live = live_of(setup, &bob).await;
    assert!(live.is_empty(), "tokens that survived: {live:?}");
}

/// Sixteen invitations at once, with ticket traffic beside them: every one
/// is made (none fails because another write committed meanwhile).
async fn concurrent_invitations_all_succeed(setup: WithAdmin) {
    const INVITES: usize = 16;
    let mut clients = Vec::new();
    for _ in 0..INVITES {
        clients.push(setup.admin().await);
    }
    let service = setup.server.scheduler().await;
    let results = released_together(INVITES * 2, |i| {
        let mut admin = clients[i % INVITES].clone();
        let mut service = service.clone();
        async move {
            if i < INVITES {
                let email = format!("user{i}@example.com");
                invite_user(&mut admin, &email, &["Ops"], 0).await.map(drop)
            } else {
                tessera_tests::mint_ticket(&mut service, "u", "", 0)
                    .await
                    .map(drop)
            }
        }
    })
    .await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
}

/// A leaked token pasted into RevokeCredential or RevokeSubject: refused
/// as INVALID_ARGUMENT naming its public id, and neither the error, the
/// audit log nor ListAuditEvents holds the token.
async fn a_token_sent_as_an_id_is_refused_and_never_recorded(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    let leaked = create_access_token(&mut ada, "leaked", 0)
        .await
        .expect("create");
    let token = leaked.access_token;
    let id = token::credential_id("usr", &token);
    let status = revoke_credential(&mut ada, &token)
        .await
        .expect_err("a token");
    assert_status(&status, Code::InvalidArgument, None);
    assert!(status.message().contains(&id), "{status:?}");
    assert!(!status.message().contains(&token));
    let status = revoke_subject(&mut ada, &token, false)
        .await
        .expect_err("a token");
    assert_status(&status, Code::InvalidArgument, None);
    let audit = audit_rows(&setup.conn().await).await;
    assert_not_in_audit(&audit, &[&token]);
    assert!(
        audit
            .iter()
            .any(|row| row.action == "credential.revoke" && row.resource == id),
        "the attempt is recorded by the public id: {audit:?}"
    );
    verify_bearer(&mut setup.server.scheduler().await, &token)
        .await
        .expect("still valid: revoke it by its id");
}

/// A configured service secret pasted into RevokeCredential or
/// RevokeSubject, bare, after `Bearer ` or quoted: refused naming its public
/// id, never echoed, and the audit entry records that id (every admin,
/// services included, reads the audit log).
async fn a_service_secret_sent_as_an_id_is_refused_and_never_recorded(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    let id = token::credential_id("svc", ALPHA_SECRET);
    let pasted = [
        ALPHA_SECRET.to_owned(),
        format!("Bearer {ALPHA_SECRET}"),
        format!(" \"{ALPHA_SECRET}\" "),
    ];
    for value in &pasted {
        let status = revoke_credential(&mut ada, value)
            .await
            .expect_err("a secret");
        assert_status(&status, Code::InvalidArgument, None);
        assert!(status.message().contains(&id), "{status:?}");
        assert!(!status.message().contains(ALPHA_SECRET), "{status:?}");
        let status = revoke_subject(&mut ada, value, false)
            .await
            .expect_err("a secret");
        assert_status(&status, Code::InvalidArgument, None);
        assert!(!status.message().contains(ALPHA_SECRET), "{status:?}");
    }
    let audit = audit_rows(&setup.conn().await).await;
    assert_not_in_audit(&audit, &[ALPHA_SECRET]);
    let recorded = |action: &str| {
        audit
            .iter()
            .any(|row| row.action == action && row.resource == id)
    };
    assert!(
        recorded("credential.revoke") && recorded("subject.revoke"),
        "{audit:?}"
    );
}

/// RevokeSubject{disable} of a service user is refused: a service is
/// disabled by its configuration, and the call must not claim otherwise.
async fn a_service_user_is_not_disabled_for_show(setup: WithAdmin) {
    let mut service = setup.server.scheduler().await;
    let own = verify_bearer(&mut service, &scheduler_secret())
        .await
        .expect("own");
    let mut ada = setup.admin().await;
    let status = revoke_subject(&mut ada, &own.subject, true)
        .await
        .expect_err("a service user");
    assert_status(&status, Code::InvalidArgument, None);
    verify_bearer(&mut service, &scheduler_secret())
        .await
        .expect("the service still authenticates");
}

/// A page token forged for one's own listing with a NUL in its id.
async fn a_forged_page_token_is_invalid(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    create_access_token(&mut ada, "second", 0)
        .await
        .expect("create");
    let first_page = || pb::ListCredentialsRequest {
        page_size: 1,
        kind: CredentialKind::UserAccess.into(),
        ..Default::default()
    };
    let page = list_credentials(&mut ada, first_page())
        .await
        .expect("first page");
    let real = String::from_utf8(hex_decode(&page.next_page_token)).expect("text");
    let (scope_and_key, _) = real.rsplit_once(':').expect("id part");
    let forged = hex_encode(format!("{scope_and_key}:usr_\u{0}").as_bytes());
    let request = pb::ListCredentialsRequest {
        page_token: forged,
        ..first_page()
    };
    let status = list_credentials(&mut ada, request)
        .await
        .expect_err("forged");
    assert_status(&status, Code::InvalidArgument, None);
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The live (unrevoked) credentials of `subject`, as an admin lists them.
async fn live_of(setup: &WithAdmin, subject: &str) -> Vec<pb::CredentialInfo> {
    let request = pb::ListCredentialsRequest {
        subject: subject.to_owned(),
        include_revoked: true,
        ..Default::default()
    };
    let all = list_all(&mut setup.admin().await, request)
        .await
        .expect("list");
    all.into_iter().filter(|c| c.revoked_at.is_none()).collect()
}

/// AcceptInvite and the RevokeSubject that disables the invited user, at
/// once, five times: neither fails (a deadlock would be INTERNAL), and the
/// user holds no live credential afterwards.
async fn a_redemption_racing_a_disable_neither_deadlocks_nor_survives(setup: WithAdmin) {
    for round in 0..5 {
        let email = format!("racer{round}@example.com");
        let invited = invite_user(&mut setup.admin().await, &email, &[], 0)
            .await
            .expect("invite");
        let subject = invited.user.expect("user").subject;
        let (admin, anonymous) = (setup.admin().await, setup.anonymous().await);
        let results = released_together(2, |i| {
            let (mut admin, mut anonymous) = (admin.clone(), anonymous.clone());
            let (subject, invite) = (subject.clone(), invited.invite_token.clone());
            async move {
                if i == 0 {
                    accept_invite(&mut anonymous, &invite, "t").await.map(drop)
                } else {
                    revoke_subject(&mut admin, &subject, true).await.map(drop)
                }
            }
        })
        .await;
        assert!(
            results[1].is_ok(),
            "round {round}: the disable: {:?}",
            results[1]
        );
        if let Err(status) = &results[0] {
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "round {round}: {status:?}"
            );
        }
        let live = live_of(&setup, &subject).await;
        assert!(live.is_empty(), "round {round}: survived: {live:?}");
    }
}

/// A runtime rotating its auth token with its registration token while an
/// admin revokes everything of its workspace, six times: no auth token it
/// got verifies afterwards.
async fn a_registration_racing_a_revocation_keeps_no_auth_token(setup: WithAdmin) {
    for round in 0..6 {
        let id = format!("ws-race-{round}");
        let ws = provision_workspace(&mut setup.admin().await, &id, "")
            .await
            .expect("provision");
        let admin = setup.admin().await;
        let runtime = setup.server.client(Some(&ws.registration_token)).await;
        let results = released_together(2, |i| {
            let (mut admin, mut runtime, id) = (admin.clone(), runtime.clone(), id.clone());
            async move {
                if i == 0 {
                    let request = pb::RegisterWorkspaceRequest {
                        workspace_id: id,
                        reissue_auth_token: true,
                        ..Default::default()
                    };
                    let response = runtime.register_workspace(request).await;
                    response.map(|r| r.into_inner().auth_token)
                } else {
                    revoke_subject(&mut admin, &id, false).await.map(|_| None)
                }
            }
        })
        .await;
        assert!(
            results[1].is_ok(),
            "round {round}: the revocation: {:?}",
            results[1]
        );
        if let Ok(Some(auth)) = &results[0] {
            let status = verify_bearer(&mut setup.server.scheduler().await, auth)
                .await
                .expect_err("an auth token issued during the revocation");
            assert_status(&status, Code::Unauthenticated, None);
        }
        let status = register_workspace(&setup.server, &ws.registration_token, &id, true)
            .await
            .expect_err("the registration token is revoked");
        assert_status(&status, Code::Unauthenticated, None);
        assert!(live_of(&setup, &id).await.is_empty(), "round {round}");
    }
}

/// A leaked token with spaces, `Bearer `, quotes or a URL around it, sent
/// as an id: refused naming its public id, never recorded.
async fn a_token_anywhere_in_an_id_is_refused_and_never_recorded(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    let token = create_access_token(&mut ada, "leaked", 0)
        .await
        .expect("create")
        .access_token;
    for sent in [
        format!(" {token} "),
        format!("Bearer {token}"),
        format!("\"{token}\"."),
        format!("https://example.com/?t={token}"),
    ] {
        let status = revoke_credential(&mut ada, &sent).await.expect_err(&sent);
        assert_status(&status, Code::InvalidArgument, None);
        assert!(!status.message().contains(&token), "{status:?}");
        let status = revoke_subject(&mut ada, &sent, true)
            .await
            .expect_err(&sent);
        assert_status(&status, Code::InvalidArgument, None);
    }
    assert_not_in_audit(&audit_rows(&setup.conn().await).await, &[&token]);
}
