//! The invariant of inbound-secret rotation: whatever the order of events,
//! a forward call from a platform that re-reads its secret within the
//! grace is never refused by the runtime.

use std::time::Duration;

use tessera_client::Client;
use tessera_client::token::{self, TokenKind};

use crate::TestServer;
use crate::grpc::provision_workspace;
use crate::runtime::Runtime;
use crate::workspaces::{platform_secret, rotate_inbound_secret};

/// The platform: the secret it read last, and where it reads it.
struct Platform {
    admins: Vec<Client>,
    reads: usize,
    cached: String,
}

impl Platform {
    /// Re-reads the secret, from the next replica in turn.
    async fn refresh(&mut self, workspace_id: &str) {
        self.reads += 1;
        let replica = self.reads % self.admins.len();
        self.cached = platform_secret(&mut self.admins[replica], workspace_id).await;
    }
}

/// Plays rotations, restarts (keeping or losing the config directory),
/// replaced rotations and ended graces against `servers` (replicas of one
/// database, used in turn; their grace is `grace`), making a forward call
/// with the platform's secret after every step — and one with a secret
/// never issued, which must be refused.
pub async fn rotations_never_refuse_a_forward_call(servers: &[TestServer], grace: Duration) {
    const WS: &str = "ws-forward";
    let mut admins = Vec::new();
    let mut runtimes = Vec::new();
    for server in servers {
        admins.push(server.scheduler().await);
        runtimes.push(server.client(None).await);
    }
    let provisioned = provision_workspace(&mut admins[0], WS, "")
        .await
        .expect("provision");
    let dir = tempfile::tempdir().expect("temp dir");
    let configs = dir.path().join("configs");
    let registration = &provisioned.registration_token;
    let mut runtime = Runtime::start(&runtimes[0], WS, registration, configs).await;
    let mut platform = Platform {
        admins,
        reads: 0,
        cached: provisioned.platform_inbound_secret,
    };
    let mut steps = Steps::default();
    steps.check(&runtime, &platform, "registered").await;
    let after_grace = grace + Duration::from_millis(300);

    // A rotation the runtime picks up on its next registration; the
    // platform reads before that, and keeps the current secret.
    rotate(&mut platform, WS).await;
    steps.check(&runtime, &platform, "rotation started").await;
    platform.refresh(WS).await;
    steps
        .check(&runtime, &platform, "platform read, unconfirmed")
        .await;
    runtime.register(steps.tessera(&runtimes)).await;
    steps.check(&runtime, &platform, "runtime confirmed").await;
    platform.refresh(WS).await;
    steps.check(&runtime, &platform, "platform switched").await;

    // A rotation, then a restart keeping the config directory.
    tokio::time::sleep(after_grace).await;
    steps.check(&runtime, &platform, "grace over").await;
    rotate(&mut platform, WS).await;
    runtime = runtime.restart(steps.tessera(&runtimes), false).await;
    steps
        .check(&runtime, &platform, "restart kept its files")
        .await;
    platform.refresh(WS).await;
    steps.check(&runtime, &platform, "platform switched").await;

    // A rotation, then a restart whose config directory came back empty.
    tokio::time::sleep(after_grace).await;
    rotate(&mut platform, WS).await;
    steps.check(&runtime, &platform, "rotation started").await;
    runtime = runtime.restart(steps.tessera(&runtimes), true).await;
    steps
        .check(&runtime, &platform, "restart lost its files")
        .await;
    platform.refresh(WS).await;
    steps.check(&runtime, &platform, "platform switched").await;

    // A second rotation before the first finished.
    tokio::time::sleep(after_grace).await;
    rotate(&mut platform, WS).await;
    runtime.register(steps.tessera(&runtimes)).await;
    steps
        .check(&runtime, &platform, "first rotation confirmed")
        .await;
    rotate(&mut platform, WS).await;
    steps
        .check(&runtime, &platform, "refused during the grace")
        .await;
    platform.refresh(WS).await;
    tokio::time::sleep(after_grace).await;
    rotate(&mut platform, WS).await;
    rotate(&mut platform, WS).await;
    steps
        .check(&runtime, &platform, "unconfirmed one replaced")
        .await;
    runtime.register(steps.tessera(&runtimes)).await;
    steps.check(&runtime, &platform, "second confirmed").await;
    platform.refresh(WS).await;
    steps.check(&runtime, &platform, "platform switched").await;

    // A restart with an empty directory before a rotation.
    tokio::time::sleep(after_grace).await;
    runtime = runtime.restart(steps.tessera(&runtimes), true).await;
    steps
        .check(&runtime, &platform, "restart lost its files")
        .await;
    rotate(&mut platform, WS).await;
    runtime.register(steps.tessera(&runtimes)).await;
    steps.check(&runtime, &platform, "runtime confirmed").await;
    platform.refresh(WS).await;
    tokio::time::sleep(after_grace).await;
    steps.check(&runtime, &platform, "grace over").await;
    eprintln!("{} forward calls accepted across the steps", steps.done);
}

/// Starts a rotation through the platform's next replica; refused (and
/// nothing changed) while the last one's grace runs.
async fn rotate(platform: &mut Platform, workspace_id: &str) {
    platform.reads += 1;
    let replica = platform.reads % platform.admins.len();
    let _ = rotate_inbound_secret(&mut platform.admins[replica], workspace_id, false).await;
}

#[derive(Default)]
struct Steps {
    done: usize,
}

impl Steps {
    /// The connection to Tessera the runtime uses for this step's
    /// registration: each replica in turn.
    fn tessera<'a>(&self, runtimes: &'a [Client]) -> &'a Client {
        &runtimes[self.done % runtimes.len()]
    }

    async fn check(&mut self, runtime: &Runtime, platform: &Platform, what: &str) {
        self.done += 1;
        let step = self.done;
        if let Err(status) = runtime.forward_call(&platform.cached).await {
            panic!("step {step} ({what}): the platform's forward call was refused: {status:?}");
        }
        let stranger = token::generate(TokenKind::WorkspaceInbound);
        let refused = runtime.forward_call(stranger.expose()).await;
        assert!(
            refused.is_err(),
            "step {step} ({what}): a made-up secret passed"
        );
    }
}
