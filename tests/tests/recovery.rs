//! The operator's recovery path, as processes on the database while a
//! server runs on it, on SQLite and PostgreSQL: `tessera access-token
//! create` mints a token for an existing human, `tessera credentials
//! list|revoke` show and take back credentials (the running server refuses
//! a revoked one at once), `tessera users enable` undoes a disable.

use std::process::Output;

use tessera_client::pb::PrincipalKind;
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Code;
use tessera_tests::credentials::{accept_invite, invite_user, revoke_subject};
use tessera_tests::grpc::verify_as;
use tessera_tests::install::bootstrap_admin;
use tessera_tests::{
    ServerOptions, TestDatabase, TestServer, assert_status, run_tessera_async, scheduler_secret,
};

tessera_tests::on_both_backends!(open => an_operator_mints_lists_revokes_and_enables);

async fn open(db: &TestDatabase) -> (String, TestServer) {
    let server = TestServer::start(db, ServerOptions::scheduler()).await;
    (db.url().to_owned(), server)
}

/// `tessera <args>` on the database at `url`.
async fn tessera(url: &str, args: &[&str]) -> Output {
    run_tessera_async(args, &[("DATABASE_URL", url)]).await
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed ({:?}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

async fn an_operator_mints_lists_revokes_and_enables((url, server): (String, TestServer)) {
    let admin = bootstrap_admin(&server).await;
    let args = [
        "access-token",
        "create",
        "--email",
        " ADA@example.com ",
        "--name",
        "rescue",
    ];
    let rescue = stdout(&tessera(&url, &args).await);
    assert_eq!(token::parse(&rescue), Ok(TokenKind::UserAccess));
    let verified = verify_as(&server, &scheduler_secret(), &rescue)
        .await
        .expect("verifies");
    assert_eq!(
        (verified.kind(), verified.email.as_str()),
        (PrincipalKind::User, "ada@example.com")
    );
    let rescue_id = token::credential_id("usr", &rescue);

    let listing = stdout(&tessera(&url, &["credentials", "list"]).await);
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines[0].starts_with("ID"), "{listing}");
    assert_eq!(
        lines.len(),
        3,
        "header, the first admin's and the rescue token: {listing}"
    );
    assert!(
        lines[2].starts_with(&rescue_id) && lines[2].contains("rescue"),
        "{listing}"
    );
    assert!(!listing.contains(&rescue) && !listing.contains(&admin.admin_token));
    assert!(
        !listing.contains(&token::sha256_hex(&rescue)),
        "no hash either"
    );

    let revoked = stdout(&tessera(&url, &["credentials", "revoke", &rescue_id]).await);
    assert!(
        revoked.starts_with(&format!("{rescue_id} revoked at ")),
        "{revoked}"
    );
    let status = verify_as(&server, &scheduler_secret(), &rescue)
        .await
        .expect_err("the running server refuses it at once");
    assert_status(&status, Code::Unauthenticated, None);
    let args = ["credentials", "list", "--include-revoked"];
    assert_eq!(stdout(&tessera(&url, &args).await).lines().count(), 3);

    // A disabled user gets no token until enabled again.
    let mut ada = server.client(Some(&admin.admin_token)).await;
    let carol = invite_user(&mut ada, "carol@example.com", &["Admin"], 0)
        .await
        .expect("invite");
    accept_invite(&mut server.client(None).await, &carol.invite_token, "t")
        .await
        .expect("carol");
    let ada_subject = admin.admin.expect("admin").subject;
    revoke_subject(&mut server.scheduler().await, &ada_subject, true)
        .await
        .expect("disable ada");
    let refused = tessera(
        &url,
        &["access-token", "create", "--email", "ada@example.com"],
    )
    .await;
    assert!(!refused.status.success(), "a disabled user gets no token");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("disabled"));
    let enabled = stdout(&tessera(&url, &["users", "enable", "--email", "ada@example.com"]).await);
    assert_eq!(enabled, "ada@example.com enabled");
    let again = stdout(
        &tessera(
            &url,
            &["access-token", "create", "--email", "ada@example.com"],
        )
        .await,
    );
    verify_as(&server, &scheduler_secret(), &again)
        .await
        .expect("enabled again");

    for email in ["nobody@example.com", "scheduler@system.local"] {
        let refused = tessera(&url, &["access-token", "create", "--email", email]).await;
        assert!(!refused.status.success(), "{email}");
        assert!(refused.stdout.is_empty(), "{email}: nothing on stdout");
    }
    let unknown = tessera(&url, &["credentials", "revoke", "usr_0000000000000000"]).await;
    assert!(!unknown.status.success());
}
