//! The credentials that live outside the `credentials` table, in the
//! lifecycle RPCs, on SQLite and PostgreSQL: a process's internal
//! credential is revoked by id (refused at once, by its own process too,
//! which mints a replacement), and configured service secrets are listed
//! read-only to admins, never revocable here.

use tessera_client::pb::{self, CredentialKind};
use tessera_client::token;
use tessera_client::tonic::Code;
use tessera_tests::credentials::{
    insert_user_with_token, list_all, list_credentials, revoke_credential,
};
use tessera_tests::grpc::{consume_ticket, internal_credential};
use tessera_tests::install::bootstrap_admin;
use tessera_tests::{
    ServerOptions, TestDatabase, TestServer, assert_status, scheduler_secret, service_secret,
};

tessera_tests::on_both_backends!(
    open =>
    a_revoked_internal_credential_is_replaced,
    service_secrets_are_listed_read_only,
);

async fn open(db: &TestDatabase) -> (String, TestServer) {
    let deployer = format!(
        "{},{}",
        service_secret("deploy-new"),
        service_secret("deploy-old")
    );
    let options = ServerOptions::scheduler().envs(&[("TESSERA_SERVICE_TOKEN_DEPLOYER", &deployer)]);
    (db.url().to_owned(), TestServer::start(db, options).await)
}

async fn a_revoked_internal_credential_is_replaced((url, server): (String, TestServer)) {
    let mut service = server.scheduler().await;
    let first = internal_credential(&mut service).await.expect("mint");
    consume_ticket(&mut service, &first, "")
        .await
        .expect("accepted");
    let id = token::credential_id("int", &first);

    let conn = sea_orm::Database::connect(&url).await.expect("connect");
    let bob = insert_user_with_token(&conn, "bob", "bob@example.com", None).await;
    let status = revoke_credential(&mut server.client(Some(&bob)).await, &id)
        .await
        .expect_err("not a user's to revoke");
    assert_status(&status, Code::NotFound, None);

    let revoked = revoke_credential(&mut service, &id).await.expect("revoke");
    assert_eq!(revoked.kind(), CredentialKind::Internal);
    assert_eq!(revoked.subject, "server-internal");
    assert!(revoked.revoked_at.is_some());
    let status = consume_ticket(&mut service, &first, "")
        .await
        .expect_err("refused by its own process at once");
    assert_status(&status, Code::Unauthenticated, None);
    let again = revoke_credential(&mut service, &id).await.expect("twice");
    assert_eq!(again.revoked_at, revoked.revoked_at);

    let second = internal_credential(&mut service)
        .await
        .expect("a replacement");
    assert_ne!(second, first);
    consume_ticket(&mut service, &second, "")
        .await
        .expect("the replacement works");
    assert_eq!(
        internal_credential(&mut service).await.expect("same"),
        second,
        "stable again"
    );
    let status = consume_ticket(&mut service, &first, "")
        .await
        .expect_err("still refused");
    assert_status(&status, Code::Unauthenticated, None);

    for bad in [
        "int_0000000000000000",
        "int_",
        "int_%",
        "int_ABCDEF0123456789",
    ] {
        let status = revoke_credential(&mut service, bad).await.expect_err(bad);
        assert_status(&status, Code::NotFound, None);
    }
}

async fn service_secrets_are_listed_read_only((url, server): (String, TestServer)) {
    let admin = bootstrap_admin(&server).await;
    let mut ada = server.client(Some(&admin.admin_token)).await;
    let only_services = pb::ListCredentialsRequest {
        kind: CredentialKind::ServiceSecret.into(),
        ..Default::default()
    };
    let services = list_all(&mut ada, only_services.clone())
        .await
        .expect("list");
    let mut seen: Vec<(String, String, String)> = services
        .iter()
        .map(|c| (c.name.clone(), c.slot.clone(), c.credential_id.clone()))
        .collect();
    seen.sort();
    let id = |secret: &str| token::credential_id("svc", secret);
    assert_eq!(
        seen,
        vec![
            (
                "deployer".into(),
                "current".into(),
                id(&service_secret("deploy-new"))
            ),
            (
                "deployer".into(),
                "previous".into(),
                id(&service_secret("deploy-old"))
            ),
            (
                "scheduler".into(),
                "current".into(),
                id(&scheduler_secret())
            ),
        ]
    );
    assert!(
        services
            .iter()
            .all(|c| c.kind() == CredentialKind::ServiceSecret)
    );
    assert!(
        services
            .iter()
            .all(|c| c.subject.ends_with("@system.local"))
    );

    // In an unfiltered listing they come first, and paging passes them.
    let everything = pb::ListCredentialsRequest {
        page_size: 2,
        ..Default::default()
    };
    let all = list_all(&mut ada, everything).await.expect("list");
    assert_eq!(
        all.len(),
        4,
        "three service secrets and Ada's token: {all:?}"
    );
    assert_eq!(all[3].kind(), CredentialKind::UserAccess);
    let by_subject = pb::ListCredentialsRequest {
        subject: "scheduler@system.local".into(),
        ..Default::default()
    };
    assert_eq!(list_all(&mut ada, by_subject).await.expect("list").len(), 1);

    let status = revoke_credential(&mut ada, &id(&scheduler_secret()))
        .await
        .expect_err("not revocable here");
    assert_status(&status, Code::FailedPrecondition, None);

    let conn = sea_orm::Database::connect(&url).await.expect("connect");
    let bob = insert_user_with_token(&conn, "bob", "bob@example.com", None).await;
    let mut bob = server.client(Some(&bob)).await;
    let page = list_credentials(&mut bob, only_services)
        .await
        .expect("list");
    assert!(page.credentials.is_empty(), "a user sees no service secret");
    let status = revoke_credential(&mut bob, &id(&scheduler_secret()))
        .await
        .expect_err("nor revokes one");
    assert_status(&status, Code::NotFound, None);
}
