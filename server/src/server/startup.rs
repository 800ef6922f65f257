//! What runs before the first call: the database opened and migrated, the
//! domain wired over it, and the background tasks started.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::ServeError;
use crate::audit_log::AuditLog;
use crate::auth::verify::SharedSecrets;
use crate::config::Settings;
use crate::domain::{InternalCredentials, Tessera};
use crate::health::{self, Health};
use crate::store::{Backend, DatabaseClock, SeaStore, Store};
use crate::{auth, background};

/// Missed heartbeats after which another replica's internal credential is
/// refused.
const MISSED_HEARTBEATS: u32 = 3;

/// Starts the database health check, the reaper, the heartbeat, the
/// last-used flush and the sharing of failed authentications; they stop
/// when `stop` turns true.
pub(super) fn spawn_background(
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
pub(super) struct Opened {
    pub(super) sea: SeaStore,
    pub(super) audit_log: Option<AuditLog>,
    pub(super) store: Arc<dyn Store>,
    pub(super) internal: Arc<InternalCredentials>,
    pub(super) app: Arc<Tessera>,
    pub(super) secrets: Arc<SharedSecrets>,
}

/// Opens and migrates the database, wires the domain, seeds the service
/// users and mints the install token if nobody can log in yet.
pub(super) async fn open(settings: &Settings) -> Result<Opened, ServeError> {
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

/// The failure budget per key; on PostgreSQL the deployment's, shared by
/// every replica on the database.
pub(super) fn failure_throttle(settings: &Settings) -> Arc<auth::FailureThrottle> {
    let throttle = auth::FailureThrottle::per_minute(settings.auth_failures_per_minute);
    Arc::new(match settings.database_url.backend() {
        Backend::Postgres => throttle.shared_across_replicas(),
        Backend::Sqlite => throttle,
    })
}
