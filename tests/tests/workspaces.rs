//! Workspaces end to end: provision, register, rotate the auth token,
//! read the inbound secret back; tokens bound to their workspace; legacy
//! workspaces without a secret; concurrent first registrations.

use sea_orm::{ConnectionTrait, Statement};
use tessera_client::Client;
use tessera_client::pb::{self, PrincipalKind};
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::Code;
use tessera_tests::audit::audit_rows;
use tessera_tests::grpc::{provision_workspace, register_workspace, verify_bearer};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status, service_secret};

async fn admin_server(db: &TestDatabase) -> (TestServer, Client) {
    let secret = service_secret("platform");
    let server = TestServer::start(db, ServerOptions::new().service("PLATFORM", &secret)).await;
    let client = server.client(Some(&secret)).await;
    (server, client)
}

/// Provisions `id`, which must succeed.
async fn provision(admin: &mut Client, id: &str) -> pb::ProvisionWorkspaceResponse {
    provision_workspace(admin, id, &format!("Workspace {id}"))
        .await
        .expect("provision")
}

#[tokio::test]
async fn register_returns_the_secret_every_time_and_the_auth_token_once() {
    let db = TestDatabase::sqlite();
    let (server, mut admin) = admin_server(&db).await;
    let provisioned = provision(&mut admin, "ws-1").await;
    assert!(provisioned.registration_token.starts_with("tsr_wsr_"));
    assert!(provisioned.platform_inbound_secret.starts_with("tsr_wsi_"));
    let registration = provisioned.registration_token.as_str();

    let first = register_workspace(&server, registration, "ws-1", false)
        .await
        .expect("first");
    let auth = first
        .auth_token
        .clone()
        .expect("auth token on first registration");
    assert!(auth.starts_with("tsr_wsa_"));
    assert_eq!(
        first.platform_inbound_secret.as_deref(),
        Some(provisioned.platform_inbound_secret.as_str())
    );
    assert!(first.registered_at.is_some());

    // Again, with the registration token or the auth token: same secret, no new token.
    for bearer in [registration, auth.as_str()] {
        let again = register_workspace(&server, bearer, "ws-1", false)
            .await
            .expect("again");
        assert_eq!(again.auth_token, None);
        assert_eq!(again.platform_inbound_secret, first.platform_inbound_secret);
    }
    let principal = verify_bearer(&mut admin, &auth)
        .await
        .expect("auth token verifies");
    assert_eq!(principal.kind(), PrincipalKind::Workspace);
    assert_eq!(principal.subject, "ws-1");
    // Registration tokens and inbound secrets are not bearers.
    for not_bearer in [registration, provisioned.platform_inbound_secret.as_str()] {
        let status = verify_bearer(&mut admin, not_bearer)
            .await
            .expect_err("not a bearer");
        assert_status(&status, Code::Unauthenticated, None);
    }

    let secret = admin
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: "ws-1".into(),
        })
        .await
        .expect("inbound secret")
        .into_inner();
    assert_eq!(
        secret.platform_inbound_secret,
        first.platform_inbound_secret
    );
}

#[tokio::test]
async fn reissue_rotates_the_auth_token_and_recovers_an_empty_runtime() {
    let db = TestDatabase::sqlite();
    let (server, mut admin) = admin_server(&db).await;
    let provisioned = provision(&mut admin, "ws-r").await;
    let registration = provisioned.registration_token.as_str();
    let old = register_workspace(&server, registration, "ws-r", false)
        .await
        .expect("first")
        .auth_token
        .expect("token");

    // A runtime whose config directory came back empty: registration token + reissue.
    let rotated = register_workspace(&server, registration, "ws-r", true)
        .await
        .expect("reissue");
    let new = rotated.auth_token.expect("a new auth token");
    assert_ne!(new, old);
    assert!(rotated.platform_inbound_secret.is_some());
    let status = verify_bearer(&mut admin, &old)
        .await
        .expect_err("old token revoked at once");
    assert_status(&status, Code::Unauthenticated, None);
    let status = register_workspace(&server, &old, "ws-r", false)
        .await
        .expect_err("old token cannot register");
    assert_status(&status, Code::Unauthenticated, None);
    assert_eq!(
        verify_bearer(&mut admin, &new)
            .await
            .expect("new token")
            .subject,
        "ws-r"
    );

    let actions = audit_actions(&db).await;
    for action in [
        "workspace.provision",
        "workspace.register",
        "workspace.rotate_auth_token",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not audited: {actions:?}"
        );
    }
}

#[tokio::test]
async fn tokens_of_one_workspace_do_not_register_another() {
    let db = TestDatabase::sqlite();
    let (server, mut admin) = admin_server(&db).await;
    let a = provision(&mut admin, "ws-a").await;
    provision(&mut admin, "ws-b").await;
    let a_auth = register_workspace(&server, &a.registration_token, "ws-a", false)
        .await
        .expect("a")
        .auth_token
        .expect("token");
    for bearer in [a.registration_token.as_str(), a_auth.as_str()] {
        let status = register_workspace(&server, bearer, "ws-b", true)
            .await
            .expect_err("cross-workspace");
        assert_status(&status, Code::PermissionDenied, None);
    }
    // Neither a service secret (a known caller without the right) nor
    // garbage registers a workspace.
    let refusals = [
        (service_secret("platform"), Code::PermissionDenied),
        ("garbage".to_owned(), Code::Unauthenticated),
    ];
    for (bearer, code) in refusals {
        let status = register_workspace(&server, &bearer, "ws-a", false)
            .await
            .expect_err("not a workspace token");
        assert_status(&status, code, None);
    }
    // ws-a's token still works after the refused attempts.
    register_workspace(&server, &a_auth, "ws-a", false)
        .await
        .expect("still valid");
}

#[tokio::test]
async fn provisioning_validates_and_refuses_duplicates() {
    let db = TestDatabase::sqlite();
    let (server, mut admin) = admin_server(&db).await;
    provision(&mut admin, "dup").await;
    let status = admin
        .provision_workspace(pb::ProvisionWorkspaceRequest {
            workspace_id: "dup".into(),
            name: String::new(),
        })
        .await
        .expect_err("duplicate");
    assert_status(&status, Code::AlreadyExists, None);
    for bad in ["", "has space", "-lead", &"x".repeat(129), "a/b"] {
        let request = pb::ProvisionWorkspaceRequest {
            workspace_id: bad.to_owned(),
            name: String::new(),
        };
        let status = admin
            .provision_workspace(request)
            .await
            .expect_err("invalid id");
        assert_status(&status, Code::InvalidArgument, None);
        let details = tonic_types::StatusExt::get_error_details(&status);
        let violations = details
            .bad_request()
            .map(|b| b.field_violations.clone())
            .unwrap_or_default();
        assert!(
            violations.iter().any(|v| v.field == "workspace_id"),
            "{status:?}"
        );
    }
    let status = admin
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: "nope".into(),
        })
        .await
        .expect_err("unknown");
    assert_status(&status, Code::NotFound, None);
    // Only Admin members provision: a workspace token may not.
    let p = provision(&mut admin, "ws-x").await;
    let mut runtime = server.client(Some(&p.registration_token)).await;
    let request = pb::ProvisionWorkspaceRequest {
        workspace_id: "ws-y".into(),
        name: String::new(),
    };
    let status = runtime
        .provision_workspace(request)
        .await
        .expect_err("not admin");
    assert_status(&status, Code::PermissionDenied, None);
}

#[tokio::test]
async fn legacy_workspace_without_secret_registers_with_the_field_absent() {
    let db = TestDatabase::sqlite();
    let (server, mut admin) = admin_server(&db).await;
    let registration = token::generate(TokenKind::WorkspaceRegistration);
    let conn = db.connect().await;
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        "INSERT INTO workspaces (id, name, inbound_secret, registration_hash, created_at) VALUES ($1, $2, NULL, $3, 0)",
        ["legacy".into(), "Legacy".into(), token::sha256_hex(registration.expose()).into()],
    ))
    .await
    .expect("seed legacy row");
    // Its registration token's record, as the credentials migration makes
    // for rows from before it (server/tests/credentials_migration.rs).
    let hash = token::sha256_hex(registration.expose());
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        "INSERT INTO credentials (id, hash, kind, subject, name, created_at, created_by) \
         VALUES ($1, $2, 'workspace_registration', 'legacy', '', 0, '')",
        [format!("wsr_{}", &hash[..16]).into(), hash.clone().into()],
    ))
    .await
    .expect("seed its registration record");

    let response = register_workspace(&server, registration.expose(), "legacy", false)
        .await
        .expect("registers");
    assert_eq!(response.platform_inbound_secret, None, "absent, not empty");
    assert!(response.auth_token.is_some());
    let secret = admin
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: "legacy".into(),
        })
        .await
        .expect("readable")
        .into_inner();
    assert_eq!(secret.platform_inbound_secret, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_registrations_issue_one_valid_token_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let (server, mut admin) = admin_server(&db).await;
    let provisioned = provision(&mut admin, "ws-race").await;
    let runtime = server.client(Some(&provisioned.registration_token)).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let mut runtime = runtime.clone();
            tokio::spawn(async move {
                let request = pb::RegisterWorkspaceRequest {
                    workspace_id: "ws-race".into(),
                    reissue_auth_token: false,
                    ..Default::default()
                };
                runtime
                    .register_workspace(request)
                    .await
                    .map(|r| r.into_inner())
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        let response = task.await.expect("join").expect("register");
        tokens.extend(response.auth_token);
    }
    assert_eq!(tokens.len(), 1, "the auth token is issued once");
    verify_bearer(&mut admin, &tokens[0])
        .await
        .expect("and it verifies");
}

#[tokio::test]
async fn secrets_stay_out_of_logs() {
    let db = TestDatabase::sqlite();
    let (server, mut admin) = admin_server(&db).await;
    let p = provision(&mut admin, "ws-log").await;
    let auth = register_workspace(&server, &p.registration_token, "ws-log", true)
        .await
        .expect("register")
        .auth_token
        .expect("token");
    let _ = register_workspace(&server, &p.registration_token, "other", false).await;
    let logs = format!("{}{}", server.stderr(), server.stdout());
    for secret in [&p.registration_token, &p.platform_inbound_secret, &auth] {
        assert!(
            !logs.contains(secret.as_str()),
            "a workspace secret reached the logs"
        );
    }
    let debug = format!("{p:?}");
    assert!(!debug.contains(&p.platform_inbound_secret) && !debug.contains(&p.registration_token));
}

async fn audit_actions(db: &TestDatabase) -> Vec<String> {
    let rows = audit_rows(&db.connect().await).await;
    rows.into_iter().map(|row| row.action).collect()
}

/// GetInboundSecret hands out a secret: every read is audited, found or not,
/// with the reader as actor.
#[tokio::test]
async fn every_inbound_secret_read_is_audited() {
    let db = TestDatabase::sqlite();
    let (_server, mut admin) = admin_server(&db).await;
    provision(&mut admin, "ws-read").await;
    for workspace_id in ["ws-read", "ws-missing"] {
        let request = pb::GetInboundSecretRequest {
            workspace_id: workspace_id.into(),
        };
        let _ = admin.get_inbound_secret(request).await;
    }
    let rows = audit_rows(&db.connect().await).await;
    let reads: Vec<_> = rows
        .iter()
        .filter(|row| row.action == "workspace.read_inbound_secret")
        .map(|row| {
            (
                row.actor.as_str(),
                row.resource.as_str(),
                row.outcome.as_str(),
            )
        })
        .collect();
    let reader = "platform@system.local";
    assert_eq!(
        reads,
        [
            (reader, "workspace:ws-read", "ok"),
            (reader, "workspace:ws-missing", "not found")
        ]
    );
}
