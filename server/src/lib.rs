//! Tessera's server: [`serve`] runs the gRPC service on a listener until a
//! shutdown future completes.
//!
//! A request's path through the crate: [`auth`] (caller authentication and
//! the policy table) → [`grpc`] (thin adapter) → [`app::Tessera`] (domain,
//! no tonic) → [`store::Store`] (sea-orm).
#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub mod auth;
mod background;
pub mod bearer;
pub mod clock;
pub mod config;
pub mod error;
pub mod grpc;
pub mod health;
pub mod internal;
pub mod principal;
pub mod service_bearer;
pub mod store;
pub mod tickets;

use std::future::Future;
use std::sync::Arc;

use tessera_client::pb::credential_service_server::CredentialServiceServer;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::app::Tessera;
use crate::config::Settings;
use crate::health::Health;
use crate::internal::InternalCredentials;
use crate::store::{SeaStore, Store, StoreError};

/// Missed heartbeats after which another replica's internal credential is
/// refused.
const MISSED_HEARTBEATS: u32 = 3;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gRPC transport failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not be built.
    #[error(transparent)]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Runs Tessera on `listener` until `shutdown` completes, then reports
/// `NOT_SERVING`, drains in-flight calls (up to the drain timeout) and
/// withdraws this process's internal credential.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let sea = SeaStore::connect(&settings.database_url).await?;
    sea.migrate().await?;
    let store: Arc<dyn Store> = Arc::new(sea.clone());
    let liveness = settings.heartbeat_interval * MISSED_HEARTBEATS;
    let internal = Arc::new(InternalCredentials::new(store.clone(), liveness));
    let app = Arc::new(Tessera::new(
        store.clone(),
        settings.service_secrets.clone(),
        settings.tickets,
        internal.clone(),
    ));
    app.seed_service_users().await;

    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::new(reporter);
    health.set(true).await;
    let (stop_tx, stop) = watch::channel(false);
    let tasks = [
        tokio::spawn(health::watch_database(
            store.clone(),
            health.clone(),
            settings.db_check_interval,
            stop.clone(),
        )),
        tokio::spawn(background::reap(
            app.clone(),
            store.clone(),
            internal.clone(),
            settings.reaper_interval,
            stop.clone(),
        )),
        tokio::spawn(background::heartbeat(
            internal.clone(),
            settings.heartbeat_interval,
            stop,
        )),
    ];

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tessera_client::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let (drain_tx, drain_rx) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutdown requested; reporting NOT_SERVING and draining");
        let _ = stop_tx.send(true);
        health.set(false).await;
        let _ = drain_tx.send(());
    };
    let server = Server::builder()
        .layer(auth::AuthLayer::new(app.clone()))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(CredentialServiceServer::new(grpc::CredentialsApi::new(app)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal);
    let drain_deadline = async {
        match drain_rx.await {
            Ok(()) => tokio::time::sleep(settings.drain_timeout).await,
            Err(_) => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = server => result.map_err(ServeError::from),
        () = drain_deadline => {
            tracing::warn!("drain timeout reached; closing the remaining calls");
            Ok(())
        }
    };

    for task in tasks {
        task.abort();
    }
    if let Err(err) = internal.retire().await {
        tracing::warn!(error = %err, "could not withdraw the internal credential");
    }
    sea.close().await;
    result
}
