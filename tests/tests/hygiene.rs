//! Secret hygiene, proven: with logs at `trace` in JSON, no issued secret
//! appears anywhere the server writes, except the install-token banner line.

use tessera_client::pb;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, service_secret};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_at_trace_level() {
    let db = TestDatabase::sqlite();
    let secret = service_secret("scheduler");
    let next = service_secret("next");
    let options = ServerOptions::new()
        .service("SCHEDULER", &format!("{secret},{next}"))
        .service("TYPO", "too-short-secret")
        .env("RUST_LOG", "trace");
    let mut server = TestServer::start(&db, options).await;
    let mut service = server.client(Some(&secret)).await;
    let mut secrets = vec![secret.clone(), next.clone(), "too-short-secret".to_owned()];

    // Tickets: mint, consume, replay, wrong purpose.
    for purpose in ["ws-upgrade", "other"] {
        let ticket = service
            .mint_ticket(pb::MintTicketRequest {
                user_id: "u1".into(),
                provider: "github".into(),
                purpose: "ws-upgrade".into(),
                ttl_seconds: 0,
            })
            .await
            .expect("mint")
            .into_inner()
            .ticket;
        for _ in 0..2 {
            let request = pb::ConsumeTicketRequest {
                ticket: ticket.clone(),
                purpose: purpose.into(),
            };
            let _ = service.consume_ticket(request).await;
        }
        secrets.push(ticket);
    }

    // The internal credential, used as a ticket and as a caller.
    let internal = service
        .get_internal_credential(pb::GetInternalCredentialRequest {})
        .await
        .expect("internal")
        .into_inner()
        .credential;
    let request = pb::ConsumeTicketRequest {
        ticket: internal.clone(),
        purpose: String::new(),
    };
    service
        .consume_ticket(request)
        .await
        .expect("internal as ticket");
    let mut as_internal = server.client(Some(&internal)).await;
    let _ = as_internal
        .verify_bearer(pb::VerifyBearerRequest {
            token: secret.clone(),
        })
        .await;
    secrets.push(internal);

    // The install token from the banner, traded for an admin token.
    let banner: Vec<String> = server
        .stdout()
        .lines()
        .filter_map(|line| line.strip_prefix("INSTALL TOKEN: ").map(str::to_owned))
        .collect();
    let install = banner.first().cloned().expect("banner");
    let mut anonymous = server.client(None).await;
    let admin = anonymous
        .consume_install_token(pb::ConsumeInstallTokenRequest {
            install_token: install.clone(),
            admin_email: "ada@example.com".into(),
            admin_name: "Ada".into(),
        })
        .await
        .expect("consume install token")
        .into_inner();
    let _ = service
        .verify_bearer(pb::VerifyBearerRequest {
            token: admin.admin_token.clone(),
        })
        .await;

    // Workspaces: provision, register, rotate, read back.
    let provisioned = service
        .provision_workspace(pb::ProvisionWorkspaceRequest {
            workspace_id: "ws-1".into(),
            name: String::new(),
        })
        .await
        .expect("provision")
        .into_inner();
    let mut runtime = server.client(Some(&provisioned.registration_token)).await;
    let mut auth_tokens = Vec::new();
    for reissue in [false, true] {
        let request = pb::RegisterWorkspaceRequest {
            workspace_id: "ws-1".into(),
            reissue_auth_token: reissue,
        };
        let registered = runtime
            .register_workspace(request)
            .await
            .expect("register")
            .into_inner();
        auth_tokens.extend(registered.auth_token);
    }
    for token in &auth_tokens {
        let _ = service
            .verify_bearer(pb::VerifyBearerRequest {
                token: token.clone(),
            })
            .await;
    }
    let _ = service
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: "ws-1".into(),
        })
        .await
        .expect("inbound");
    secrets.extend([
        admin.admin_token,
        provisioned.registration_token,
        provisioned.platform_inbound_secret,
    ]);
    secrets.extend(auth_tokens);

    // Give the last log lines a moment to arrive, then stop the server so
    // its shutdown logs are captured too.
    server.terminate();
    let mut server = server;
    server.wait_exit(std::time::Duration::from_secs(10)).await;

    let stderr = server.stderr();
    let stdout = server.stdout();
    assert!(
        stderr.lines().count() > 50,
        "trace logging produced output:\n{stderr}"
    );
    for value in &secrets {
        assert!(
            !stderr.contains(value.as_str()),
            "a secret reached the logs: {}…",
            &value[..8]
        );
        assert!(
            !stdout.contains(value.as_str()),
            "a secret reached stdout: {}…",
            &value[..8]
        );
    }
    let mentions: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains(&install))
        .collect();
    assert_eq!(
        mentions,
        vec![format!("INSTALL TOKEN: {install}")],
        "only the banner line"
    );
    assert!(
        !stderr.contains(&install),
        "the install token reached the logs"
    );
}
