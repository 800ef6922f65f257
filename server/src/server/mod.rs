//! `serve`: the wiring of store, domain, auth layer, gRPC services, health,
//! metrics and background tasks (`startup.rs`), and the order of a clean
//! shutdown (`shutdown.rs`).

mod shutdown;
mod startup;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tessera_client::pb::credential_service_server::CredentialServiceServer;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tonic::transport::Server;

use crate::config::Settings;
use crate::health::Health;
use crate::listen::{self, Listening, SharedAcceptor};
use crate::reload::{self, Reloader};
use crate::store::StoreError;
use crate::{auth, grpc, metrics};
use shutdown::{AUDIT_LOG_TIMEOUT, close, flush_on_exit, on_shutdown, retire};
use startup::{Opened, failure_throttle, open, spawn_background};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log copy could not be opened.
    #[error("{0}")]
    AuditLog(std::io::Error),
    /// The gRPC transport failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The metrics endpoint could not start.
    #[error("metrics: {0}")]
    Metrics(String),
    /// The reflection service could not be built.
    #[error(transparent)]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The TLS files do not make a TLS configuration.
    #[error(transparent)]
    Tls(#[from] listen::TlsConfigError),
}

/// Runs Tessera on `listener` until `shutdown` completes, then reports
/// `NOT_SERVING`, drains in-flight calls (up to the drain timeout) and
/// withdraws this process's internal credential. Each notification of
/// `hangups` reloads the service tokens file and the TLS files.
pub(crate) async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    hangups: Arc<Notify>,
) -> Result<(), ServeError> {
    // Bad TLS files stop the server before it touches the database.
    let tls = settings.tls.as_ref().map(listen::acceptor).transpose()?;
    let tls = tls.map(|acceptor| Arc::new(SharedAcceptor::new(acceptor)));
    let opened = open(&settings).await?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::new(reporter);
    health.set(true).await;
    let (stop_tx, stop) = watch::channel(false);
    let stop_for_metrics = stop.clone();
    let stop_for_reloads = stop.clone();
    let failures = failure_throttle(&settings);
    let tasks = spawn_background(&settings, &opened, &failures, &health, stop);
    let Opened {
        sea,
        audit_log,
        internal,
        app,
        secrets,
        ..
    } = opened;
    let last_used = app.last_used.clone();

    // v1 and v1alpha both: grpcurl and grpcio-reflection still speak v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tessera_client::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let (drain_tx, drain_rx) = oneshot::channel::<()>();
    let signal = on_shutdown(shutdown, stop_tx, health, drain_tx, internal.clone());
    let limits = settings.limits;
    let mut builder = Server::builder()
        .timeout(limits.request_timeout)
        .max_concurrent_streams(Some(limits.max_concurrent_streams))
        .http2_keepalive_interval(limits.http2_keepalive_interval)
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout));
    if let Some(age) = limits.max_connection_age {
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(limits.request_timeout);
    }
    if let Some(addr) = settings.metrics_listen {
        start_metrics(addr, stop_for_metrics).await?;
    }
    let reloader = Reloader::new(&settings, tls.as_ref(), &app, secrets);
    let reloads = tokio::spawn(reload::run(reloader, hangups, stop_for_reloads));
    let router = builder
        .layer(metrics::MetricsLayer)
        .layer(auth::AuthLayer::new(
            Arc::new(app.authenticator()),
            auth::Throttle::per_minute(settings.anonymous_rate_per_minute),
            failures,
            crate::peers::PeerPlaces::per_peer(limits.max_watch_streams_per_peer),
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            CredentialServiceServer::new(grpc::CredentialsApi::new(app))
                .max_decoding_message_size(limits.max_message_bytes),
        );
    // Accepting starts only now: a connection's preface deadline runs
    // from its accept, and nothing reads it before tonic serves.
    let listening = listen::listen(listener, &limits, tls);
    // One instance of tonic's server per connection type, as each is
    // generic over it.
    let server: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
        match listening {
            Listening::Plaintext(incoming) => {
                Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
            }
            Listening::Tls(incoming) => {
                Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
            }
        };
    let drain_deadline = async {
        match drain_rx.await {
            Ok(()) => tokio::time::sleep(settings.drain_timeout).await,
            Err(_) => std::future::pending().await,
        }
    };
    let (result, drained) = tokio::select! {
        result = server => (result.map_err(ServeError::from), true),
        () = drain_deadline => {
            tracing::warn!("drain timeout reached; abandoning the remaining calls");
            (Ok(()), false)
        }
    };

    for task in tasks {
        task.abort();
    }
    reloads.abort();
    retire(&internal).await;
    if drained {
        flush_on_exit(&last_used).await;
    }
    // Closing the pool waits for every connection in use; after a drain
    // timeout some may be held by abandoned calls, so the process leaves
    // them to exit instead.
    if drained {
        close(sea).await;
    }
    if let Some(log) = audit_log {
        log.finish(AUDIT_LOG_TIMEOUT).await;
    }
    result
}

/// Installs the metrics recorder and serves it on `addr` until `stop`.
async fn start_metrics(addr: SocketAddr, stop: watch::Receiver<bool>) -> Result<(), ServeError> {
    let handle = metrics::install().map_err(|err| ServeError::Metrics(err.to_string()))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| ServeError::Metrics(format!("cannot listen on {addr}: {err}")))?;
    let bound = listener
        .local_addr()
        .map_err(|err| ServeError::Metrics(err.to_string()))?;
    tracing::info!(addr = %bound, "metrics listening");
    tokio::spawn(metrics::serve(listener, handle, stop));
    Ok(())
}
