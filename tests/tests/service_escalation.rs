//! A SERVICE principal never causes a user credential to exist: a service
//! secret, used as caller on every RPC (and everything it yields used as
//! caller again), obtains no `tsr_usr_` token, and no user access token or
//! human user is stored afterwards.

use tessera_client::Client;
use tessera_client::pb::{self, InstallTokenState, PrincipalKind};
use tessera_client::tonic::{Code, Status};
use tessera_tests::grpc::{
    consume_install_token, consume_ticket, internal_credential, mint_ticket, provision_workspace,
    register_workspace, verify_as,
};
use tessera_tests::install::{
    banner_lines, boot_token, humans, issue_install_token, user_tokens, wait_for_banners,
};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, assert_status, scheduler_secret};

const USER_TOKEN_PREFIX: &str = "tsr_usr_";
const WORKSPACE: &str = "ws-escalation";

/// Every string a call returned, by RPC (the message of an error too).
type Seen = Vec<(&'static str, String)>;

/// The strings of a principal (Debug of secret-bearing messages is
/// redacted, so the fields are read one by one).
fn principal_strings(principal: Option<&pb::Principal>) -> Vec<String> {
    principal.map_or_else(Vec::new, |p| {
        let mut all = vec![
            p.subject.clone(),
            p.email.clone(),
            p.display_name.clone(),
            p.credential_id.clone(),
        ];
        all.extend(p.groups.iter().cloned());
        all
    })
}

/// Records the strings of `result`.
fn record<T>(
    seen: &mut Seen,
    rpc: &'static str,
    result: &Result<T, Status>,
    strings: impl Fn(&T) -> Vec<String>,
) {
    match result {
        Ok(response) => seen.extend(strings(response).into_iter().map(|s| (rpc, s))),
        Err(status) => seen.push((rpc, status.message().to_owned())),
    }
}

/// VerifyBearer, tickets and the internal credential as the service; an
/// install token is not a bearer in either position. Returns (ticket,
/// internal credential).
async fn use_service_rpcs(
    server: &TestServer,
    service: &mut Client,
    install_token: &str,
    seen: &mut Seen,
) -> (String, String) {
    let secret = scheduler_secret();
    let verified = verify_as(server, &secret, &secret).await;
    record(seen, "VerifyBearer", &verified, |p| {
        principal_strings(Some(p))
    });
    assert_eq!(verified.expect("verify").kind(), PrincipalKind::Service);
    let err = verify_as(server, &secret, install_token)
        .await
        .expect_err("install token as token");
    assert_status(&err, Code::Unauthenticated, None);
    let err = verify_as(server, install_token, &secret)
        .await
        .expect_err("install token as caller");
    assert_status(&err, Code::Unauthenticated, None);

    let ticket = mint_ticket(service, "u-1", "", 0).await;
    record(seen, "MintTicket", &ticket, |t| vec![t.clone()]);
    let ticket = ticket.expect("mint");
    let identity = consume_ticket(service, &ticket, "").await;
    record(seen, "ConsumeTicket", &identity, |i| {
        vec![i.user_id.clone(), i.provider.clone()]
    });
    let internal = internal_credential(service).await;
    record(seen, "GetInternalCredential", &internal, |c| {
        vec![c.clone()]
    });
    (ticket, internal.expect("internal credential"))
}

/// IssueInstallToken as the service (it is in `Admin`): it never receives
/// the token; the forced one goes to the server's standard output instead,
/// for the operator, as a second banner after the boot one.
async fn issue_install_tokens(server: &TestServer, service: &mut Client, seen: &mut Seen) {
    for force in [false, true] {
        let issued = issue_install_token(service, force).await;
        record(seen, "IssueInstallToken", &issued, |r| {
            r.install_token.iter().cloned().collect()
        });
        let issued = issued.expect("a service is in Admin");
        assert!(
            issued.install_token.is_none(),
            "a service never receives an install token (force={force})"
        );
    }
    let stdout = wait_for_banners(|| server.stdout(), 2).await;
    assert_eq!(banner_lines(&stdout).len(), 2, "boot and forced banners");
    let state = service
        .get_install_token_status(pb::GetInstallTokenStatusRequest {})
        .await;
    assert_eq!(
        state.expect("status").into_inner().state(),
        InstallTokenState::Pending
    );
}

/// ConsumeInstallToken with what a service holds instead of an install
/// token: UNAUTHENTICATED each time.
async fn consume_install_with(service: &mut Client, held: [(&str, &str); 3], seen: &mut Seen) {
    for (what, presented) in held {
        let consumed =
            consume_install_token(service, presented, "svc-admin@example.com", "Svc").await;
        record(seen, "ConsumeInstallToken", &consumed, |r| {
            let mut all = principal_strings(r.admin.as_ref());
            all.push(r.admin_token.clone());
            all
        });
        let err = consumed.expect_err(what);
        assert_status(&err, Code::Unauthenticated, None);
    }
}

/// Workspaces (whatever their implementation state): follows every
/// credential they hand out; returns the auth tokens.
async fn use_workspaces(server: &TestServer, service: &mut Client, seen: &mut Seen) -> Vec<String> {
    let provisioned = provision_workspace(service, WORKSPACE, "Escalation").await;
    record(seen, "ProvisionWorkspace", &provisioned, |r| {
        vec![
            r.workspace_id.clone(),
            r.registration_token.clone(),
            r.platform_inbound_secret.clone(),
        ]
    });
    let mut registrants = vec![scheduler_secret()];
    if let Ok(provisioned) = &provisioned {
        registrants.push(provisioned.registration_token.clone());
    }
    let mut auth_tokens = Vec::new();
    for bearer in &registrants {
        let registered = register_workspace(server, bearer, WORKSPACE, false).await;
        record(seen, "RegisterWorkspace", &registered, |r| {
            r.auth_token
                .iter()
                .chain(r.platform_inbound_secret.iter())
                .cloned()
                .collect()
        });
        if let Ok(registered) = registered {
            auth_tokens.extend(registered.auth_token);
        }
    }
    let inbound = service
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: WORKSPACE.to_owned(),
        })
        .await
        .map(tessera_client::tonic::Response::into_inner);
    record(seen, "GetInboundSecret", &inbound, |r| {
        r.platform_inbound_secret.iter().cloned().collect()
    });
    auth_tokens
}

/// What the service obtained, used as caller, yields no user token and
/// verifies as no USER either.
async fn use_derived_credentials(server: &TestServer, derived: &[String], seen: &mut Seen) {
    for bearer in derived {
        let mut client = server.client(Some(bearer)).await;
        let minted = mint_ticket(&mut client, "u-1", "", 0).await;
        record(seen, "MintTicket (derived)", &minted, |t| vec![t.clone()]);
        let issued = issue_install_token(&mut client, true).await;
        record(seen, "IssueInstallToken (derived)", &issued, |r| {
            r.install_token.iter().cloned().collect()
        });
        let verified = verify_as(server, &scheduler_secret(), bearer).await;
        record(seen, "VerifyBearer (derived)", &verified, |p| {
            principal_strings(Some(p))
        });
        if let Ok(principal) = &verified {
            assert_ne!(principal.kind(), PrincipalKind::User, "{principal:?}");
        }
    }
}

/// Every RPC is called with the service secret as caller (and with what it
/// yields), and nothing returned is a `tsr_usr_` token. This is the rule
/// that keeps a service from minting a credential that outlives it.
#[tokio::test]
async fn service_principals_never_obtain_a_user_access_token() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let install_token = boot_token(&server).await;
    let secret = scheduler_secret();
    let mut service = server.scheduler().await;
    let mut seen: Seen = Vec::new();

    let (ticket, internal) =
        use_service_rpcs(&server, &mut service, &install_token, &mut seen).await;
    issue_install_tokens(&server, &mut service, &mut seen).await;
    let held = [
        ("service secret", secret.as_str()),
        ("ticket", ticket.as_str()),
        ("internal credential", internal.as_str()),
    ];
    consume_install_with(&mut service, held, &mut seen).await;
    let auth_tokens = use_workspaces(&server, &mut service, &mut seen).await;
    let mut derived = vec![internal.clone(), ticket.clone()];
    derived.extend(auth_tokens);
    use_derived_credentials(&server, &derived, &mut seen).await;

    for (rpc, value) in &seen {
        assert!(
            !value.contains(USER_TOKEN_PREFIX),
            "{rpc} returned a user access token"
        );
    }
    let conn = db.connect().await;
    assert_eq!(user_tokens(&conn).await, 0, "no user access token exists");
    assert_eq!(humans(&conn).await, 0, "no human user exists");
}
