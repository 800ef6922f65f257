//! A minimal workspace runtime embedding `tessera-client`.
//!
//! It registers with Tessera, saves the auth token and the platform inbound
//! secret under `$CONFIGS_DIR` (default `/configs`), then serves an internal
//! HTTP route that only the platform (holding the inbound secret) may call.
//!
//! ```sh
//! TESSERA_ENDPOINT=http://127.0.0.1:50051 \
//! TESSERA_WORKSPACE_ID=ws-1 \
//! TESSERA_REGISTRATION_TOKEN=tsr_wsr_... \
//! CONFIGS_DIR=/tmp/ws-1 \
//!   cargo run -p tessera-client --example workspace_runtime
//! curl -H "authorization: Bearer $(cat /tmp/ws-1/.platform_inbound_secret)" \
//!   http://127.0.0.1:8080/internal/ping
//! ```

use std::error::Error;

use axum::Router;
use axum::routing::get;
use tessera_client::workspace::{
    InboundAuthLayer, RegisterError, Schedule, WorkspaceFiles, keep_registered,
    register_and_persist,
};
use tessera_client::{Client, Secret};

/// Where the internal routes listen; loopback only in this example.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

fn env(name: &str) -> Result<String, Box<dyn Error>> {
    std::env::var(name).map_err(|_| format!("{name} must be set").into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let endpoint =
        std::env::var("TESSERA_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let workspace_id = env("TESSERA_WORKSPACE_ID")?;
    // Handed over by the provisioner; it stays valid, so it is what lets a
    // restarted runtime with an empty configs directory recover.
    let registration_token = Secret::new(env("TESSERA_REGISTRATION_TOKEN")?);
    let files = WorkspaceFiles::from_env();

    // The client's own bearer does not matter: register_and_persist picks
    // the stored auth token or the registration token per call.
    let client = Client::builder(endpoint).connect().await?;
    match register_and_persist(&client, &workspace_id, &registration_token, &files).await {
        Ok(registration) => println!(
            "registered {workspace_id} (new auth token: {}, inbound secret: {})",
            registration.auth_token_issued,
            registration.inbound_secret.is_some(),
        ),
        // Registered, but the files could not be written: keep serving; the
        // layer fails closed until a later registration manages to save.
        Err(RegisterError::Persist { source, .. }) => eprintln!("warning: {source}"),
        Err(err) => return Err(err.into()),
    }

    // Registering again now and then picks up a rotation of the inbound
    // secret and confirms it, without a restart.
    tokio::spawn(keep_registered(
        client,
        workspace_id,
        registration_token,
        files.clone(),
        Schedule::default(),
        |result| {
            if let Err(err) = result {
                eprintln!("warning: registration: {err}");
            }
        },
    ));

    // The layer reads the inbound secrets (current, next, previous until its
    // deadline) through the same cached files registration saves through,
    // so a rotation applies at once without rebuilding the router.
    let internal = Router::new()
        .route("/internal/ping", get(|| async { "pong" }))
        .layer(InboundAuthLayer::from_files(&files));

    let listen = std::env::var("WORKSPACE_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "serving internal routes on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, internal).await?;
    Ok(())
}
