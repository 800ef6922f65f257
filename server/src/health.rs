//! gRPC health: `SERVING` only while the database answers, and never again
//! once shutdown has begun.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tessera_client::pb::credential_service_server::CredentialServiceServer;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::grpc::CredentialsApi;
use crate::store::Store;

/// Name under which the credential service reports its health.
pub(crate) const SERVICE_NAME: &str =
    <CredentialServiceServer<CredentialsApi> as NamedService>::NAME;

/// Sets the status of `""` and of the credential service together.
#[derive(Clone)]
pub(crate) struct Health {
    reporter: HealthReporter,
    serving: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
}

impl Health {
    /// Reports through `reporter`; starts as not serving.
    pub(crate) fn new(reporter: HealthReporter) -> Self {
        Self {
            reporter,
            serving: Arc::new(AtomicBool::new(false)),
            closing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Reports `SERVING` or `NOT_SERVING`; ignored once shutdown began.
    pub(crate) async fn set(&self, serving: bool) {
        if self.closing.load(Ordering::SeqCst) {
            return;
        }
        self.report(serving).await;
    }

    /// Reports `NOT_SERVING` for good.
    pub(crate) async fn shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.report(false).await;
    }

    /// What was reported last.
    pub(crate) fn is_serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }

    async fn report(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
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

/// Pings the database once (giving up after `timeout`) and reports a
/// change of state. Logs only changes.
pub(crate) async fn check_database(store: &dyn Store, health: &Health, timeout: Duration) {
    let healthy = matches!(
        tokio::time::timeout(timeout, store.ping()).await,
        Ok(Ok(()))
    );
    if let Some((open, idle)) = store.pool_usage() {
        metrics::gauge!("tessera_db_pool_connections", "state" => "open").set(f64::from(open));
        metrics::gauge!("tessera_db_pool_connections", "state" => "idle").set(idle as f64);
    }
    if healthy == health.is_serving() {
        return;
    }
    if healthy {
        tracing::info!("database reachable again; reporting SERVING");
    } else {
        tracing::error!("database unreachable; reporting NOT_SERVING");
    }
    health.set(healthy).await;
}
