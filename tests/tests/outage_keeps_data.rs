//! A PostgreSQL outage in the middle of traffic loses nothing: tickets,
//! the first admin and its token, a workspace with its auth token and
//! inbound secret, and the internal credential are all as they were once
//! the database is back; meanwhile background calls only succeed or fail
//! UNAVAILABLE, and no ticket is consumed twice.
//!
//! PostgreSQL is required here: this test fails, not skips, without it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_client::Client;
use tessera_client::pb::{self, InstallTokenState, PrincipalKind};
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::{Code, Status};
use tessera_tests::fixture::Fixture;
use tessera_tests::grpc::{
    consume_ticket, internal_credential, mint_ticket, provision_workspace, register_workspace,
    verify_bearer,
};
use tessera_tests::install::bootstrap_admin;
use tessera_tests::{CREDENTIAL_SERVICE, TestDatabase, TestServer, assert_status};
use tokio::task::JoinHandle;
use tonic_health::pb::health_check_response::ServingStatus;

/// How long health may take to follow the database (checked every 200 ms).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// State stored before the outage, worth losing.
struct Stored {
    /// (ticket, user_id, purpose).
    tickets: Vec<(String, String, &'static str)>,
    admin: pb::ConsumeInstallTokenResponse,
    provisioned: pb::ProvisionWorkspaceResponse,
    auth_token: String,
    internal: String,
}

const WORKSPACE: &str = "ws-outage";

/// Tickets, the first admin and its token, a workspace with its auth token
/// and inbound secret, and the internal credential.
async fn store_state_worth_losing(fx: &mut Fixture) -> Stored {
    let mut tickets = Vec::new();
    for i in 0..6 {
        let purpose = if i % 2 == 0 { "ws-upgrade" } else { "" };
        let user = format!("before-{i}");
        let ticket = mint_ticket(&mut fx.client, &user, purpose, 300)
            .await
            .expect("mint");
        tickets.push((ticket, user, purpose));
    }
    let admin = bootstrap_admin(&fx.server).await;
    let provisioned = provision_workspace(&mut fx.client, WORKSPACE, "Outage")
        .await
        .expect("provision");
    let auth_token = register_workspace(
        &fx.server,
        &provisioned.registration_token,
        WORKSPACE,
        false,
    )
    .await
    .expect("register")
    .auth_token
    .expect("auth token");
    let internal = internal_credential(&mut fx.client)
        .await
        .expect("internal credential");
    assert_eq!(token::parse(&internal), Ok(TokenKind::Internal));
    Stored {
        tickets,
        admin,
        provisioned,
        auth_token,
        internal,
    }
}

/// What background traffic saw during the outage, by RPC and code.
type Seen = Arc<Mutex<HashMap<(&'static str, Code), usize>>>;

/// Counts one outcome of `rpc`.
fn record<T>(seen: &Seen, rpc: &'static str, result: &Result<T, Status>) {
    let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
    *seen.lock().expect("seen").entry((rpc, code)).or_default() += 1;
}

/// Mint-then-consume on `client` until `stop`, counting every outcome, and
/// checking that no ticket is consumed twice.
async fn traffic(mut client: Client, stop: Arc<AtomicBool>, seen: Seen, worker: usize) {
    let mut spent = HashSet::new();
    let started = Instant::now();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(40) {
        i += 1;
        let minted = mint_ticket(&mut client, &format!("bg-{worker}-{i}"), "", 300).await;
        record(&seen, "MintTicket", &minted);
        if let Ok(ticket) = minted {
            let consumed = consume_ticket(&mut client, &ticket, "").await;
            record(&seen, "ConsumeTicket", &consumed);
            if consumed.is_ok() {
                assert!(spent.insert(ticket), "a ticket was consumed twice");
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Background clients calling through the whole outage.
struct Traffic {
    stop: Arc<AtomicBool>,
    seen: Seen,
    workers: Vec<JoinHandle<()>>,
}

impl Traffic {
    async fn start(server: &TestServer, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Seen = Arc::default();
        let mut handles = Vec::new();
        for worker in 0..workers {
            let client = server.scheduler().await;
            handles.push(tokio::spawn(traffic(
                client,
                stop.clone(),
                seen.clone(),
                worker,
            )));
        }
        Traffic {
            stop,
            seen,
            workers: handles,
        }
    }

    fn ok_mints(&self) -> usize {
        let seen = self.seen.lock().expect("seen");
        seen.get(&("MintTicket", Code::Ok)).copied().unwrap_or(0)
    }

    /// Lets every worker mint again (at most 10 s), then stops them; what
    /// they saw.
    async fn stop_once_minting_again(self) -> HashMap<(&'static str, Code), usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ok_before = self.ok_mints();
        while self.ok_mints() < ok_before + self.workers.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            tokio::time::timeout(Duration::from_secs(30), worker)
                .await
                .expect("traffic stops")
                .expect("no ticket consumed twice");
        }
        self.seen.lock().expect("seen").clone()
    }
}

/// Without the database, every call that needs it is UNAVAILABLE: tickets,
/// a user token to verify, a user caller, the install-token status. The
/// process's own internal credential is checked in memory and still works.
async fn assert_calls_needing_the_database_are_unavailable(fx: &mut Fixture, stored: &Stored) {
    let (ticket, _, purpose) = &stored.tickets[0];
    let status = consume_ticket(&mut fx.client, ticket, purpose)
        .await
        .expect_err("ConsumeTicket without a database");
    assert_status(&status, Code::Unavailable, None);
    let status = mint_ticket(&mut fx.client, "during", "", 0)
        .await
        .expect_err("MintTicket without a database");
    assert_status(&status, Code::Unavailable, None);
    let status = verify_bearer(&mut fx.client, &stored.admin.admin_token)
        .await
        .expect_err("a user token cannot be checked without a database");
    assert_status(&status, Code::Unavailable, None);
    let mut as_admin = fx.server.client(Some(&stored.admin.admin_token)).await;
    let subject = stored.admin.admin.clone().expect("admin").subject;
    let status = mint_ticket(&mut as_admin, &subject, "", 0)
        .await
        .expect_err("an admin caller cannot be authenticated without a database");
    assert_status(&status, Code::Unavailable, None);
    let status = install_state(&fx.server)
        .await
        .expect_err("status without a database");
    assert_status(&status, Code::Unavailable, None);
    let identity = consume_ticket(&mut fx.client, &stored.internal, "")
        .await
        .expect("the process's own internal credential needs no database");
    assert!(identity.internal);
}

/// GetInstallTokenStatus, anonymously.
async fn install_state(server: &TestServer) -> Result<InstallTokenState, Status> {
    let mut anonymous = server.client(None).await;
    let request = pb::GetInstallTokenStatusRequest {};
    Ok(anonymous
        .get_install_token_status(request)
        .await?
        .into_inner()
        .state())
}

/// After the outage, everything in `stored` is as it was: each ticket
/// consumable once, the admin and workspace tokens verify, the inbound
/// secret and the install-token state unchanged, the internal credential
/// the same.
async fn assert_nothing_stored_was_lost(fx: &mut Fixture, stored: &Stored) {
    for (ticket, user, purpose) in &stored.tickets {
        let identity = consume_ticket(&mut fx.client, ticket, purpose)
            .await
            .unwrap_or_else(|s| panic!("a ticket minted before the outage: {s:?}"));
        assert_eq!(&identity.user_id, user);
        let status = consume_ticket(&mut fx.client, ticket, purpose)
            .await
            .expect_err("once");
        assert_status(&status, Code::Unauthenticated, Some("TICKET_REPLAYED"));
    }
    let principal = verify_bearer(&mut fx.client, &stored.admin.admin_token)
        .await
        .expect("the admin token");
    assert_eq!(principal.kind(), PrincipalKind::User);
    assert_eq!(principal.email, "ada@example.com");
    assert!(principal.groups.iter().any(|g| g == "Admin"));
    let principal = verify_bearer(&mut fx.client, &stored.auth_token)
        .await
        .expect("the workspace auth token");
    assert_eq!(principal.kind(), PrincipalKind::Workspace);
    let inbound = fx
        .client
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: WORKSPACE.into(),
        })
        .await
        .expect("inbound secret")
        .into_inner();
    assert_eq!(
        inbound.platform_inbound_secret.as_deref(),
        Some(stored.provisioned.platform_inbound_secret.as_str())
    );
    let state = install_state(&fx.server).await.expect("status");
    assert_eq!(state, InstallTokenState::Consumed);
    let again = internal_credential(&mut fx.client)
        .await
        .expect("internal credential");
    assert_eq!(again, stored.internal, "stable across the outage");
    let principal = verify_bearer(&mut fx.client, &stored.internal)
        .await
        .expect("the internal credential");
    assert_eq!(principal.kind(), PrincipalKind::Internal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_mid_run_loses_no_stored_data_and_recovers_without_restart() {
    const WORKERS: usize = 4;
    let mut fx = Fixture::on(TestDatabase::postgres_required().await, &[]).await;
    let stored = store_state_worth_losing(&mut fx).await;
    let traffic = Traffic::start(&fx.server, WORKERS).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let outage = Instant::now();
    fx.db.refuse_connections().await;
    fx.server
        .wait_for_health(ServingStatus::NotServing, HEALTH_TIMEOUT)
        .await;
    let flipped = outage.elapsed();
    assert_eq!(
        fx.server.health_status(CREDENTIAL_SERVICE).await,
        Some(ServingStatus::NotServing)
    );
    assert_calls_needing_the_database_are_unavailable(&mut fx, &stored).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fx.server.health_status("").await,
        Some(ServingStatus::NotServing),
        "still up, still reporting"
    );

    // It comes back; the same process recovers.
    let restored = Instant::now();
    fx.db.allow_connections().await;
    fx.server
        .wait_for_health(ServingStatus::Serving, HEALTH_TIMEOUT)
        .await;
    let recovered = restored.elapsed();
    let outage_time = outage.elapsed();
    let seen = traffic.stop_once_minting_again().await;
    assert_nothing_stored_was_lost(&mut fx, &stored).await;

    let mut summary: Vec<_> = seen.iter().collect();
    summary.sort_by_key(|((rpc, code), _)| (*rpc, *code as i32));
    eprintln!(
        "outages: PostgreSQL outage: NOT_SERVING {flipped:.2?} after the database went away, \
         SERVING {recovered:.2?} after it returned ({outage_time:.2?} in all); \
         {WORKERS} background clients saw {summary:?}"
    );
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|((_, code), _)| !matches!(code, Code::Ok | Code::Unavailable))
        .collect();
    assert!(
        unexpected.is_empty(),
        "calls during the outage must succeed or fail UNAVAILABLE, got {unexpected:?}; \
         server errors:\n{}",
        fx.server.error_lines(10)
    );
    assert!(seen.contains_key(&("MintTicket", Code::Unavailable)));
    fx.assert_survived().await;
}
