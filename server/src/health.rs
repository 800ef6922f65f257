//! gRPC health: `SERVING` only while the database answers.

use std::sync::Arc;
use std::time::Duration;

use tessera_client::pb::credential_service_server::CredentialServiceServer;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::grpc::CredentialsApi;
use crate::store::Store;

/// Name under which the credential service reports its health.
pub const SERVICE_NAME: &str = <CredentialServiceServer<CredentialsApi> as NamedService>::NAME;

/// Sets the status of `""` and of the credential service together.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
}

impl Health {
    /// Reports through `reporter`.
    pub fn new(reporter: HealthReporter) -> Self {
        Self { reporter }
    }

    /// Reports `SERVING` or `NOT_SERVING`.
    pub async fn set(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for service in ["", SERVICE_NAME] {
            self.reporter.set_service_status(service, status).await;
        }
    }
}

/// Pings the database every `interval` and reports the result, until `stop`
/// turns true. Logs only changes.
pub async fn watch_database(
    store: Arc<dyn Store>,
    health: Health,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let result = tokio::time::timeout(interval.max(Duration::from_secs(1)), store.ping()).await;
        let healthy = matches!(result, Ok(Ok(())));
        if *stop.borrow() {
            return;
        }
        if healthy != serving {
            if healthy {
                tracing::info!("database reachable again; reporting SERVING");
            } else {
                tracing::error!("database unreachable; reporting NOT_SERVING");
            }
            health.set(healthy).await;
            serving = healthy;
        }
    }
}
