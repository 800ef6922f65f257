//! `serve`: the wiring of store, domain, auth layer, gRPC services, health,
//! metrics and background tasks, and the order of a clean shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tessera_client::pb::credential_service_server::CredentialServiceServer;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tonic::transport::Server;

use crate::audit_log::AuditLog;
use crate::auth::verify::SharedSecrets;
use crate::config::Settings;
use crate::domain::{InternalCredentials, LastUsed, Tessera};
use crate::health::{self, Health};
use crate::listen::{self, Listening, SharedAcceptor};
use crate::reload::{self, Reloader};
use crate::store::{Backend, DatabaseClock, SeaStore, Store, StoreError};
use crate::{auth, background, grpc, metrics};

/// Missed heartbeats after which another replica's internal credential is
/// refused.
const MISSED_HEARTBEATS: u32 = 3;
/// How long shutdown waits to withdraw the internal credential, and to
/// write the pending last-used times.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for the audit log copy to be written out.
const AUDIT_LOG_TIMEOUT: Duration = Duration::from_secs(2);

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

/// Starts the database health check, the reaper, the heartbeat, the
/// last-used flush and the sharing of failed authentications; they stop
/// when `stop` turns true.
fn spawn_background(
    settings: &Settings,
    opened: &Opened,
    failures: &Arc<auth::FailureThrottle>,
    health: &Health,
    stop: watch::Receiver<bool>,
) -> [tokio::task::JoinHandle<()>; 5] {
    let Opened {
        store,
        internal,
        app,
        ..
    } = opened;
    let (store_, health_) = (store.clone(), health.clone());
    let ping_timeout = settings.db_check_interval.max(Duration::from_secs(1));
    let check = background::every(settings.db_check_interval, stop.clone(), move || {
        let (store, health) = (store_.clone(), health_.clone());
        async move { health::check_database(store.as_ref(), &health, ping_timeout).await }
    });
    let (app_, store_, internal_) = (app.clone(), store.clone(), internal.clone());
    let retention = background::Retention {
        audit: settings.audit_retention,
        credentials: settings.credential_retention,
    };
    let reap = background::every(settings.reaper_interval, stop.clone(), move || {
        let (app, store, internal) = (app_.clone(), store_.clone(), internal_.clone());
        async move { background::reap(&app, store.as_ref(), &internal, retention).await }
    });
    let internal_ = internal.clone();
    let beat = background::every(settings.heartbeat_interval, stop.clone(), move || {
        background::heartbeat(internal_.clone())
    });
    let last_used = app.last_used.clone();
    let flush = background::every(settings.last_used_flush_interval, stop.clone(), move || {
        background::flush_last_used(last_used.clone())
    });
    let share = auth::share_failures(failures.clone(), store.clone(), stop);
    [
        tokio::spawn(check),
        tokio::spawn(reap),
        tokio::spawn(beat),
        tokio::spawn(flush),
        tokio::spawn(share),
    ]
}

/// The store and the domain over it, ready to serve.
struct Opened {
    sea: SeaStore,
    audit_log: Option<AuditLog>,
    store: Arc<dyn Store>,
    internal: Arc<InternalCredentials>,
    app: Arc<Tessera>,
    secrets: Arc<SharedSecrets>,
}

/// Opens and migrates the database, wires the domain, seeds the service
/// users and mints the install token if nobody can log in yet.
async fn open(settings: &Settings) -> Result<Opened, ServeError> {
    let url = &settings.database_url;
    let sea = SeaStore::connect_with_pool(url, settings.db_max_connections).await?;
    let sea = match settings.clock_skew_ms {
        0 => sea,
        skew_ms => {
            tracing::warn!(
                skew_ms,
                "TESSERA_CLOCK_SKEW_MS is set: this process reads its clock off on purpose (for tests only)"
            );
            sea.with_clock(DatabaseClock::skewed(skew_ms)).await?
        }
    };
    sea.migrate().await?;
    let sea = sea.with_keys(settings.keys.clone());
    let census = sea.check_keys().await?;
    crate::store::sealing::log_census(&census, &settings.keys);
    // Before anything is audited, the install token's mint included.
    let audit_log = match &settings.audit_log {
        Some(target) => {
            let log = AuditLog::start(target).map_err(ServeError::AuditLog)?;
            sea.tap_audit(Arc::new(log.tap()));
            Some(log)
        }
        None => None,
    };
    let store: Arc<dyn Store> = Arc::new(sea.clone());
    let liveness = settings.heartbeat_interval * MISSED_HEARTBEATS;
    let internal = Arc::new(InternalCredentials::new(store.clone(), liveness));
    let secrets = Arc::new(SharedSecrets::new(Arc::new(
        settings.service_secrets.clone(),
    )));
    let app = Arc::new(Tessera::new(
        store.clone(),
        secrets.clone(),
        settings.policies,
        internal.clone(),
        settings.banner.clone(),
    ));
    app.seed_service_users().await;
    if let Err(err) = app.install.mint_at_boot().await {
        tracing::error!(error = %err, "could not mint the install token");
    }
    Ok(Opened {
        sea,
        audit_log,
        store,
        internal,
        app,
        secrets,
    })
}

/// Once `shutdown` completes: stop the background tasks, report
/// `NOT_SERVING`, start the drain deadline and withdraw the internal
/// credential (in its own task, so a slow database cannot delay the drain).
async fn on_shutdown(
    shutdown: impl Future<Output = ()>,
    stop: watch::Sender<bool>,
    health: Health,
    drain: oneshot::Sender<()>,
    internal: Arc<InternalCredentials>,
) {
    shutdown.await;
    tracing::info!("shutdown requested; reporting NOT_SERVING and draining");
    let _ = stop.send(true);
    health.shutdown().await;
    let _ = drain.send(());
    tokio::spawn(async move { retire(&internal).await });
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
        sea.close().await;
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

/// The failure budget per key; on PostgreSQL the deployment's, shared by
/// every replica on the database.
fn failure_throttle(settings: &Settings) -> Arc<auth::FailureThrottle> {
    let throttle = auth::FailureThrottle::per_minute(settings.auth_failures_per_minute);
    Arc::new(match settings.database_url.backend() {
        Backend::Postgres => throttle.shared_across_replicas(),
        Backend::Sqlite => throttle,
    })
}

/// Writes the last-used times still pending, unless the database takes
/// longer than a shutdown should wait.
async fn flush_on_exit(last_used: &LastUsed) {
    match tokio::time::timeout(RETIRE_TIMEOUT, last_used.flush()).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "could not write the last-used times"),
        Err(_) => tracing::warn!("writing the last-used times timed out"),
    }
}

/// Withdraws this process's internal credential; other replicas refuse it
/// from now on (or, if the database is slow or unreachable, after the
/// liveness bound).
async fn retire(internal: &InternalCredentials) {
    match tokio::time::timeout(RETIRE_TIMEOUT, internal.retire()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "could not withdraw the internal credential"),
        Err(_) => tracing::warn!("withdrawing the internal credential timed out"),
    }
}
