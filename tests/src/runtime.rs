//! A workspace runtime as platforms run one: it registers through the
//! client crate, keeps its secrets in a config directory, and serves
//! forward calls (here, gRPC health checks) behind the client crate's
//! inbound layer on an ephemeral port.

use std::path::PathBuf;

use tessera_client::tonic::transport::server::TcpIncoming;
use tessera_client::tonic::transport::{Channel, Server};
use tessera_client::tonic::{Request, Status};
use tessera_client::workspace::{
    InboundAuthLayer, Registration, WorkspaceFiles, register_and_persist,
};
use tessera_client::{Client, Secret};
use tokio::task::JoinHandle;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A runtime process: its files and the server answering forward calls.
pub struct Runtime {
    workspace_id: String,
    registration_token: Secret,
    dir: PathBuf,
    files: WorkspaceFiles,
    server: Serving,
    forward: HealthClient<Channel>,
}

impl Runtime {
    /// Starts the runtime of `workspace_id` on config directory `dir` (its
    /// registration token from the environment, as provisioned) and
    /// registers it through `tessera`, as a runtime does before serving.
    pub async fn start(
        tessera: &Client,
        workspace_id: &str,
        registration_token: &str,
        dir: PathBuf,
    ) -> Runtime {
        let files = WorkspaceFiles::in_dir(&dir);
        let (server, forward) = serve(&files);
        let runtime = Runtime {
            workspace_id: workspace_id.to_owned(),
            registration_token: Secret::new(registration_token),
            dir,
            files,
            server,
            forward,
        };
        runtime.register(tessera).await;
        runtime
    }

    /// RegisterWorkspace through `tessera` with what is on disk, persisting
    /// (and confirming) what comes back.
    pub async fn register(&self, tessera: &Client) -> Registration {
        let registration = register_and_persist(
            tessera,
            &self.workspace_id,
            &self.registration_token,
            &self.files,
        );
        registration.await.expect("register and persist")
    }

    /// Stops the process and starts it again through `tessera`, with its
    /// config directory as it was or, with `wipe`, empty.
    pub async fn restart(self, tessera: &Client, wipe: bool) -> Runtime {
        let Runtime {
            workspace_id,
            registration_token,
            dir,
            files,
            server,
            forward,
        } = self;
        drop((server, files, forward));
        if wipe {
            std::fs::remove_dir_all(&dir).expect("wipe the config directory");
        }
        Runtime::start(tessera, &workspace_id, registration_token.expose(), dir).await
    }

    /// A forward call from the platform presenting `secret`.
    pub async fn forward_call(&self, secret: &str) -> Result<(), Status> {
        let mut request = Request::new(HealthCheckRequest::default());
        let bearer = format!("Bearer {secret}").parse().expect("header value");
        request.metadata_mut().insert("authorization", bearer);
        self.forward.clone().check(request).await.map(drop)
    }
}

/// A task aborted when dropped: a runtime that goes away stops serving.
struct Serving(JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A health service behind the inbound layer of `files`, and a client
/// connected to it.
fn serve(files: &WorkspaceFiles) -> (Serving, HealthClient<Channel>) {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("address")).expect("bind");
    let addr = incoming.local_addr().expect("local address");
    let (_, health) = tonic_health::server::health_reporter();
    let server = Server::builder()
        .layer(InboundAuthLayer::from_files(files))
        .add_service(health)
        .serve_with_incoming(incoming);
    let server = tokio::spawn(async move {
        let _ = server.await;
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_lazy();
    (Serving(server), HealthClient::new(channel))
}
