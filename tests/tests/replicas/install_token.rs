//! The first-admin install token on replicas booting together: one token
//! minted and printed across them all, and of many concurrent consumes on
//! every replica exactly one makes the admin.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_client::pb::{self, InstallTokenState, PrincipalKind};
use tessera_client::token;
use tessera_client::tonic::{Code, Status};
use tessera_tests::grpc::{consume_install_token, released_together, verify_bearer};
use tessera_tests::install::{
    banner_tokens, humans, install_rows, install_status, minted_events, token_in_banner,
    wait_for_banners,
};
use tessera_tests::secrets::{assert_no_fragment, assert_not_logged};
use tessera_tests::sql::count;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, run_tessera_async};

use super::{REPLICAS, one_at_a_time, postgres, replicas};

/// All that `servers` printed on standard output, once a banner is there
/// and a moment has passed for a second one to show.
async fn all_stdout(servers: &[TestServer]) -> String {
    let all = || servers.iter().map(TestServer::stdout).collect::<String>();
    wait_for_banners(all, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    all()
}

/// The one install token printed across `servers`, and which printed it.
async fn the_one_banner(servers: &[TestServer]) -> (String, usize) {
    let stdout = all_stdout(servers).await;
    let tokens = banner_tokens(&stdout);
    assert_eq!(tokens.len(), 1, "one banner over all replicas: {tokens:?}");
    let install_token = token_in_banner(&stdout);
    let printer = servers
        .iter()
        .position(|s| s.stdout().contains(&install_token))
        .expect("a printer");
    (install_token, printer)
}

/// What each of `n` anonymous consumers (a third on each replica, released
/// together) got: (replica, e-mail, result).
async fn race_consumes(
    servers: &[TestServer],
    install_token: &str,
    n: usize,
) -> Vec<(
    usize,
    String,
    Result<pb::ConsumeInstallTokenResponse, Status>,
)> {
    let mut clients = Vec::new();
    for i in 0..n {
        clients.push(servers[i % REPLICAS].client(None).await);
    }
    released_together(n, |i| {
        let mut client = clients[i].clone();
        let install_token = install_token.to_owned();
        async move {
            let email = format!("admin{i}@example.com");
            let result = consume_install_token(&mut client, &install_token, &email, "Racer").await;
            (i % REPLICAS, email, result)
        }
    })
    .await
}

/// A loser of a consume race with the right token: the first admin exists
/// (FAILED_PRECONDITION), never "wrong token".
fn is_refused_consume(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition
}

/// After the race: one human stored, the token consumed, every replica
/// says CONSUMED, verifies the admin's token and refuses the spent token.
async fn assert_one_admin_on_every_replica(
    db: &TestDatabase,
    servers: &[TestServer],
    install_token: &str,
    response: &pb::ConsumeInstallTokenResponse,
) {
    let admin = response.admin.as_ref().expect("admin principal");
    let conn = db.connect().await;
    assert_eq!(humans(&conn).await, 1, "exactly one admin");
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM install_token WHERE consumed_at IS NOT NULL"
        )
        .await,
        1
    );
    for server in servers {
        assert_eq!(
            install_status(server).await.state(),
            InstallTokenState::Consumed
        );
        // The admin's token verifies on every replica.
        let principal = verify_bearer(&mut server.scheduler().await, &response.admin_token)
            .await
            .expect("the admin token verifies everywhere");
        assert_eq!(principal.subject, admin.subject);
        assert_eq!(principal.kind(), PrincipalKind::User);
        // And the token is spent everywhere.
        let mut anonymous = server.client(None).await;
        let status =
            consume_install_token(&mut anonymous, install_token, "late@example.com", "Racer")
                .await
                .expect_err("consumed already");
        assert!(is_refused_consume(&status), "{status:?}");
    }
    assert_eq!(humans(&conn).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_booting_together_print_one_banner_and_racing_consumes_make_one_admin() {
    const CONSUMERS: usize = 30;
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let servers = replicas(&db).await;
    let (install_token, printer) = the_one_banner(&servers).await;

    let started = std::time::Instant::now();
    let results = race_consumes(&servers, &install_token, CONSUMERS).await;
    let mut winners = Vec::new();
    let mut refusals: HashMap<Code, usize> = HashMap::new();
    for (replica, email, result) in results {
        match result {
            Ok(response) => winners.push((replica, email, response)),
            Err(status) => {
                assert!(
                    is_refused_consume(&status),
                    "a loser on replica {replica} got {status:?}"
                );
                *refusals.entry(status.code()).or_default() += 1;
            }
        }
    }
    eprintln!(
        "replicas: install token printed by replica {printer}; {CONSUMERS} concurrent consumes \
         over {REPLICAS} replicas in {:.2?}: {} succeeded (on replica {:?}), refusals {refusals:?}",
        started.elapsed(),
        winners.len(),
        winners.iter().map(|w| w.0).collect::<Vec<_>>(),
    );
    assert_eq!(winners.len(), 1, "exactly one consume succeeds");
    let (_, email, response) = &winners[0];
    let admin = response.admin.as_ref().expect("admin principal");
    assert_eq!(&admin.email, email);
    assert_eq!(admin.kind(), PrincipalKind::User);
    assert!(admin.groups.iter().any(|g| g == "Admin"), "{admin:?}");

    assert_one_admin_on_every_replica(&db, &servers, &install_token, response).await;
    for server in &servers {
        assert_not_logged(server, &[&response.admin_token]);
    }
}

/// Three replicas boot at once on one PostgreSQL database (each start on
/// its own task). On a fresh database the migration race spreads them out;
/// on a migrated one they reach the minting step together. Either way one
/// token is minted, logged once without its value, and works on any
/// replica.
async fn boot_race(db: TestDatabase) {
    let db = Arc::new(db);
    let starts: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { TestServer::start(&db, ServerOptions::scheduler()).await })
        })
        .collect();
    let mut servers = Vec::new();
    for started in starts {
        servers.push(started.await.expect("replica starts"));
    }
    let (token, printer) = the_one_banner(&servers).await;

    let mut events = 0;
    for server in &servers {
        let stderr = server.stderr();
        events += minted_events(&stderr).len();
        assert!(
            !stderr.contains("could not mint"),
            "a replica failed to mint:\n{stderr}"
        );
        assert_no_fragment(&stderr, &token, "a replica's logs");
    }
    assert_eq!(events, 1, "one minting event across the replicas");
    let conn = db.connect().await;
    assert_eq!(
        install_rows(&conn).await,
        vec![(token::sha256_hex(&token), None)]
    );

    // Any replica accepts it, and all see it consumed.
    let other = &servers[(printer + 1) % REPLICAS];
    let mut anonymous = other.client(None).await;
    consume_install_token(&mut anonymous, &token, "ada@example.com", "Ada Lovelace")
        .await
        .expect("consume on another replica");
    for server in &servers {
        assert_eq!(
            install_status(server).await.state(),
            InstallTokenState::Consumed
        );
    }
    assert_eq!(humans(&conn).await, 1);
    drop(servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_booting_together_on_a_fresh_database_mint_one_token_postgres() {
    let _serial = one_at_a_time().await;
    boot_race(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_booting_together_on_a_migrated_database_mint_one_token_postgres() {
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let out = run_tessera_async(&["migrate"], &[("DATABASE_URL", db.url())]).await;
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    boot_race(db).await;
}
