//! Users beyond the first admin, through the real server, on SQLite and
//! PostgreSQL: an admin user invites, the invite is redeemed exactly once
//! for the user's first access token, a service never obtains a user
//! credential, an invite dies with its inviter's admin rights, and
//! RevokeSubject takes everything of a user or workspace back without ever
//! leaving no admin able to log in.

use sea_orm::ConnectionTrait;
use tessera_client::pb::{self, CredentialKind, PrincipalKind};
use tessera_client::token;
use tessera_client::tonic::Code;
use tessera_tests::credentials::{
    WithAdmin, accept_invite, create_access_token, invite_user, list_all, revoke_credential,
    revoke_subject,
};
use tessera_tests::grpc::{provision_workspace, register_workspace, released_together, verify_as};
use tessera_tests::{
    ServerOptions, TestDatabase, assert_status, now_seconds, scheduler_secret, seconds,
};

tessera_tests::on_both_backends!(
    open =>
    an_admin_user_invites_and_the_invite_is_redeemed_once,
    a_service_never_obtains_a_user_credential,
    of_concurrent_redemptions_exactly_one_wins,
    an_invite_dies_with_its_inviters_admin_rights,
    revoke_subject_takes_everything_back_but_keeps_an_admin,
    concurrent_revocations_never_leave_no_admin,
);

async fn open(db: &TestDatabase) -> WithAdmin {
    WithAdmin::start(db, ServerOptions::scheduler()).await
}

fn subject_filter(subject: &str) -> pb::ListCredentialsRequest {
    pb::ListCredentialsRequest {
        subject: subject.to_owned(),
        include_revoked: true,
        ..Default::default()
    }
}

async fn an_admin_user_invites_and_the_invite_is_redeemed_once(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    let invited = invite_user(&mut ada, "  Bob@Example.COM ", &["Ops", "Ops"], 0)
        .await
        .expect("invite");
    let user = invited.user.clone().expect("user");
    assert_eq!(user.kind(), PrincipalKind::User);
    assert_eq!(user.email, "bob@example.com", "trimmed and lower-cased");
    assert_eq!(user.display_name, "bob");
    assert_eq!(user.groups, vec!["Ops".to_owned()]);
    assert_eq!(
        user.credential_id,
        token::credential_id("inv", &invited.invite_token)
    );
    let lifetime = seconds!(invited.expires_at) - now_seconds();
    assert!(
        (lifetime - 7.0 * 86_400.0).abs() < 60.0,
        "7 days: {lifetime}"
    );

    let status = verify_as(&setup.server, &scheduler_secret(), &invited.invite_token)
        .await
        .expect_err("an invite is not a bearer");
    assert_status(&status, Code::Unauthenticated, None);

    let mut anonymous = setup.anonymous().await;
    let accepted = accept_invite(&mut anonymous, &invited.invite_token, "laptop")
        .await
        .expect("accept");
    let bob = accepted.user.expect("user");
    assert_eq!(bob.subject, user.subject);
    assert_eq!(
        bob.credential_id,
        token::credential_id("usr", &accepted.access_token)
    );
    let verified = verify_as(&setup.server, &scheduler_secret(), &accepted.access_token)
        .await
        .expect("bob's token verifies");
    assert_eq!(
        (verified.email.as_str(), verified.groups.clone()),
        ("bob@example.com", vec!["Ops".to_owned()])
    );

    let status = accept_invite(&mut anonymous, &invited.invite_token, "again")
        .await
        .expect_err("redeemed once");
    assert_status(&status, Code::Unauthenticated, None);

    let records = list_all(&mut ada, subject_filter(&user.subject))
        .await
        .expect("list");
    let kinds: Vec<(CredentialKind, &str, bool)> = records
        .iter()
        .map(|c| (c.kind(), c.name.as_str(), c.revoked_at.is_some()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (CredentialKind::Invite, "", true),
            (CredentialKind::UserAccess, "laptop", false)
        ]
    );
    assert_eq!(records[0].created_by, "ada@example.com");

    for taken in ["bob@example.com", "BOB@example.com", "ada@example.com"] {
        let status = invite_user(&mut ada, taken, &[], 0).await.expect_err(taken);
        assert_status(&status, Code::AlreadyExists, None);
    }
    let status = invite_user(&mut ada, "x@system.local", &[], 0)
        .await
        .expect_err("the service domain is reserved");
    assert_status(&status, Code::InvalidArgument, None);
    let status = invite_user(&mut ada, "carol@example.com", &["bad\ngroup"], 0)
        .await
        .expect_err("a control character in a group");
    assert_status(&status, Code::InvalidArgument, None);
}

/// Every way a service could end up holding a user credential is refused,
/// and none exists afterwards.
async fn a_service_never_obtains_a_user_credential(setup: WithAdmin) {
    let mut service = setup.server.scheduler().await;
    let status = invite_user(&mut service, "eve@example.com", &["Admin"], 0)
        .await
        .expect_err("a service never invites");
    assert_status(&status, Code::PermissionDenied, None);
    assert!(
        status
            .message()
            .contains("a service never causes a user credential to exist"),
        "the reason is given: {status:?}"
    );
    let status = create_access_token(&mut service, "svc", 0)
        .await
        .expect_err("nor mints an access token");
    assert_status(&status, Code::PermissionDenied, None);
    let forged = token::generate(token::TokenKind::Invite);
    let status = accept_invite(&mut service, forged.expose(), "x")
        .await
        .expect_err("an invite it could not get");
    assert_status(&status, Code::Unauthenticated, None);

    // A plain user cannot invite either.
    let (_, bob_token) = setup.user("bob@example.com", &[]).await;
    let mut bob = setup.server.client(Some(&bob_token)).await;
    let status = invite_user(&mut bob, "eve@example.com", &["Admin"], 0)
        .await
        .expect_err("not an admin");
    assert_status(&status, Code::PermissionDenied, None);

    let own = tessera_tests::grpc::verify_bearer(&mut service, &scheduler_secret())
        .await
        .expect("the service's own principal");
    let everything = pb::ListCredentialsRequest {
        include_revoked: true,
        include_expired: true,
        ..Default::default()
    };
    let everybody = list_all(&mut setup.admin().await, everything)
        .await
        .expect("list");
    assert!(
        everybody.len() >= 3,
        "Ada's, Bob's invite and token: {everybody:?}"
    );
    let held_by_or_made_by_the_service = everybody
        .iter()
        .filter(|c| c.subject == own.subject || c.created_by == own.email);
    assert_eq!(held_by_or_made_by_the_service.count(), 0, "{everybody:?}");
}

async fn of_concurrent_redemptions_exactly_one_wins(setup: WithAdmin) {
    const RACERS: usize = 16;
    let invited = invite_user(&mut setup.admin().await, "race@example.com", &[], 0)
        .await
        .expect("invite");
    let mut clients = Vec::new();
    for _ in 0..RACERS {
        clients.push(setup.anonymous().await);
    }
    let invite = invited.invite_token.clone();
    let results = released_together(RACERS, |i| {
        let mut client = clients[i].clone();
        let invite = invite.clone();
        async move { accept_invite(&mut client, &invite, &format!("racer-{i}")).await }
    })
    .await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for status in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_status(status, Code::Unauthenticated, None);
    }
    let subject = invited.user.expect("user").subject;
    let records = list_all(&mut setup.admin().await, subject_filter(&subject))
        .await
        .expect("list");
    let tokens = records
        .iter()
        .filter(|c| c.kind() == CredentialKind::UserAccess);
    assert_eq!(tokens.count(), 1, "one access token: {records:?}");
}

async fn an_invite_dies_with_its_inviters_admin_rights(setup: WithAdmin) {
    let (carol, carol_token) = setup.user("carol@example.com", &["Admin"]).await;
    let mut as_carol = setup.server.client(Some(&carol_token)).await;
    let dave = invite_user(&mut as_carol, "dave@example.com", &[], 0)
        .await
        .expect("invite dave");
    let erin = invite_user(&mut as_carol, "erin@example.com", &[], 0)
        .await
        .expect("invite erin");

    let conn = setup.conn().await;
    let left =
        format!("DELETE FROM group_members WHERE user_id = '{carol}' AND group_name = 'Admin'");
    conn.execute_unprepared(&left)
        .await
        .expect("carol leaves Admin");
    let status = accept_invite(&mut setup.anonymous().await, &erin.invite_token, "t")
        .await
        .expect_err("the inviter left Admin");
    assert_status(&status, Code::FailedPrecondition, None);
    let back = format!(
        "INSERT INTO group_members (user_id, group_name, added_at) VALUES ('{carol}', 'Admin', 0)"
    );
    conn.execute_unprepared(&back)
        .await
        .expect("carol rejoins Admin");
    accept_invite(&mut setup.anonymous().await, &erin.invite_token, "t")
        .await
        .expect("the refused redemption did not spend the invite");

    let mut ada = setup.admin().await;
    let revoked = revoke_subject(&mut ada, &carol, true)
        .await
        .expect("disable carol");
    assert_eq!(
        revoked, 2,
        "carol's token and her unredeemed invite of dave"
    );
    let status = accept_invite(&mut setup.anonymous().await, &dave.invite_token, "t")
        .await
        .expect_err("the invite of a disabled inviter");
    assert_status(&status, Code::Unauthenticated, None);
    let status = create_access_token(&mut as_carol, "x", 0)
        .await
        .expect_err("a disabled user authenticates no more");
    assert_status(&status, Code::Unauthenticated, None);
}

async fn revoke_subject_takes_everything_back_but_keeps_an_admin(setup: WithAdmin) {
    let mut ada = setup.admin().await;
    let mut service = setup.server.scheduler().await;
    let status = revoke_subject(&mut service, &setup.admin_subject, false)
        .await
        .expect_err("Ada is the last admin with a live token");
    assert_status(&status, Code::FailedPrecondition, None);
    let extra = create_access_token(&mut ada, "extra", 0)
        .await
        .expect("create");
    let extra_id = extra.credential.expect("credential").credential_id;
    revoke_credential(&mut ada, &extra_id)
        .await
        .expect("not her last token");
    let own_id = token::credential_id("usr", &setup.admin_token);
    let status = revoke_credential(&mut ada, &own_id)
        .await
        .expect_err("her last token");
    assert_status(&status, Code::FailedPrecondition, None);

    let (bob, bob_token) = setup.user("bob@example.com", &[]).await;
    create_access_token(
        &mut setup.server.client(Some(&bob_token)).await,
        "second",
        0,
    )
    .await
    .expect("bob's second token");
    assert_eq!(
        revoke_subject(&mut service, &bob, false)
            .await
            .expect("revoke bob"),
        2
    );
    let status = verify_as(&setup.server, &scheduler_secret(), &bob_token)
        .await
        .expect_err("bob's tokens are refused");
    assert_status(&status, Code::Unauthenticated, None);

    let ws = provision_workspace(&mut ada, "ws-gone", "")
        .await
        .expect("provision");
    let auth = register_workspace(&setup.server, &ws.registration_token, "ws-gone", false)
        .await
        .expect("register")
        .auth_token
        .expect("auth");
    let status = revoke_subject(&mut ada, "ws-gone", true)
        .await
        .expect_err("a workspace is not disabled");
    assert_status(&status, Code::InvalidArgument, None);
    assert_eq!(
        revoke_subject(&mut ada, "ws-gone", false)
            .await
            .expect("revoke"),
        2
    );
    let status = verify_as(&setup.server, &scheduler_secret(), &auth)
        .await
        .expect_err("auth");
    assert_status(&status, Code::Unauthenticated, None);
    let status = register_workspace(&setup.server, &ws.registration_token, "ws-gone", false)
        .await
        .expect_err("the registration token is revoked");
    assert_status(&status, Code::Unauthenticated, None);

    let status = revoke_subject(&mut ada, "nobody", false)
        .await
        .expect_err("unknown");
    assert_status(&status, Code::NotFound, None);
    let (carol, _) = setup.user("carol@example.com", &["Admin"]).await;
    revoke_subject(&mut service, &setup.admin_subject, true)
        .await
        .expect("Ada may go now that Carol is an admin");
    let status = revoke_subject(&mut service, &carol, false)
        .await
        .expect_err("Carol is now the last one");
    assert_status(&status, Code::FailedPrecondition, None);
}

/// Ada's eight tokens revoked all at once (one call each): the revocations
/// take turns, so exactly one is refused and one token stays live.
async fn concurrent_revocations_never_leave_no_admin(setup: WithAdmin) {
    const TOKENS: usize = 8;
    let mut ada = setup.admin().await;
    let mut ids = vec![token::credential_id("usr", &setup.admin_token)];
    for i in 1..TOKENS {
        let created = create_access_token(&mut ada, &format!("t{i}"), 0)
            .await
            .expect("create");
        ids.push(created.credential.expect("credential").credential_id);
    }
    let mut clients = Vec::new();
    for _ in 0..TOKENS {
        clients.push(setup.server.scheduler().await);
    }
    let results = released_together(TOKENS, |i| {
        let (mut client, id) = (clients[i].clone(), ids[i].clone());
        async move { revoke_credential(&mut client, &id).await }
    })
    .await;
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(refused.len(), 1, "exactly one refused: {results:?}");
    assert_status(refused[0], Code::FailedPrecondition, None);
    let live = list_all(
        &mut setup.server.scheduler().await,
        subject_filter(&setup.admin_subject),
    )
    .await
    .expect("list");
    let live = live.iter().filter(|c| c.revoked_at.is_none()).count();
    assert_eq!(live, 1, "one of Ada's tokens is left");
}
