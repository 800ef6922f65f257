//! SIGHUP: the service tokens file and the TLS files are read again, and
//! what they now hold serves the next call and the next connection. Calls
//! in flight keep the secrets they started with, connections keep their
//! TLS sessions. A file that cannot be read or parsed leaves what it
//! configures as it was, and the reason is logged (never a secret).

mod files;
mod live;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, watch};

pub(crate) use files::{open_regular, read_bounded};
pub(crate) use live::Live;

use crate::auth::verify::{self, ServiceSecrets, SharedSecrets};
use crate::config::Settings;
use crate::domain::Tessera;
use crate::listen::{self, SharedAcceptor, TlsFiles};

/// Counter of reloads, by `outcome` (`ok` or `failed`).
const RELOADS_TOTAL: &str = "tessera_config_reloads_total";
/// Gauge: Unix time of the last reload that read everything it had to
/// (startup counts as one).
const RELOAD_TIMESTAMP: &str = "tessera_config_reload_timestamp_seconds";

/// What a SIGHUP reloads, and where the results go.
pub(crate) struct Reloader {
    /// The service tokens file, when secrets come from one.
    tokens_file: Option<PathBuf>,
    /// The secrets the verifier and the listings read.
    secrets: Arc<SharedSecrets>,
    /// The TLS files and the acceptor of new connections, when serving TLS.
    tls: Option<(TlsFiles, Arc<SharedAcceptor>)>,
    /// Seeds the users of service names a reload adds.
    app: Arc<Tessera>,
}

impl Reloader {
    /// What a SIGHUP reloads under `settings`: the tokens file into
    /// `secrets`, the TLS files into `tls`.
    pub(crate) fn new(
        settings: &Settings,
        tls: Option<&Arc<SharedAcceptor>>,
        app: &Arc<Tessera>,
        secrets: Arc<SharedSecrets>,
    ) -> Self {
        let tls = settings
            .tls
            .as_ref()
            .zip(tls)
            .map(|(tls, shared)| (tls.files.clone(), shared.clone()));
        Self {
            tokens_file: settings.service_tokens_file.clone(),
            secrets,
            tls,
            app: app.clone(),
        }
    }

    /// Reads everything again; `true` when every file could be used. Each
    /// part stands alone: a bad certificate does not hold back new secrets.
    pub(crate) async fn reload(&self) -> bool {
        let secrets = self.reload_secrets().await;
        let tls = self.reload_tls().await;
        let ok = secrets && tls;
        let outcome = if ok { "ok" } else { "failed" };
        metrics::counter!(RELOADS_TOTAL, "outcome" => outcome).increment(1);
        if ok {
            mark_reloaded();
            tracing::info!(outcome, "configuration reloaded");
        } else {
            tracing::warn!(outcome, "configuration reload failed; see the errors above");
        }
        ok
    }

    async fn reload_secrets(&self) -> bool {
        let Some(path) = &self.tokens_file else {
            return true;
        };
        let path = path.clone();
        let read = blocking(move || verify::read_tokens_file(&path).map_err(|err| err.to_string()));
        match read.await {
            Ok(secrets) => {
                let services = secrets.accounts().len();
                let ids = |secrets: &ServiceSecrets| -> HashSet<String> {
                    secrets
                        .listed()
                        .into_iter()
                        .map(|s| s.credential_id)
                        .collect()
                };
                let retired = !ids(&self.secrets.load()).is_subset(&ids(&secrets));
                self.secrets.replace(Arc::new(secrets));
                tracing::info!(services, "service secrets reloaded");
                if retired && let Err(err) = self.app.internal.revoke_own().await {
                    tracing::error!(error = %err, "the internal credential could not be revoked after a service secret was retired");
                }
                // New names work at once anyway (seeded on first use);
                // seeding now only spares that first call the write.
                self.app.seed_service_users().await;
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "service secrets not reloaded; the previous ones stay in force");
                false
            }
        }
    }

    async fn reload_tls(&self) -> bool {
        let Some((files, shared)) = &self.tls else {
            return true;
        };
        let files = files.clone();
        let built = blocking(move || {
            let settings = files.read()?;
            listen::acceptor(&settings).map_err(|err| err.to_string())
        });
        match built.await {
            Ok(acceptor) => {
                shared.replace(acceptor);
                tracing::info!("TLS certificate reloaded; new connections use it");
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "TLS not reloaded; the previous certificate stays in force");
                false
            }
        }
    }
}

/// How long one reload may spend reading its files.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reloads on every notification of `hangups` until `stop` turns true.
/// Hangups that arrive during a reload are folded into one more.
pub(crate) async fn run(reloader: Reloader, hangups: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    mark_reloaded();
    loop {
        tokio::select! {
            () = hangups.notified() => {
                reloader.reload().await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// Runs `read` where blocking file reads hold up no calls (a tokens file
/// on a slow network mount, say), and gives up after [`READ_TIMEOUT`]: a
/// read that hangs fails this reload, never the ones after it.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(READ_TIMEOUT, tokio::task::spawn_blocking(read)).await {
        Ok(done) => done.unwrap_or_else(|err| Err(format!("reading failed: {err}"))),
        Err(_) => Err(format!(
            "reading took longer than {} s; kept the settings in use",
            READ_TIMEOUT.as_secs()
        )),
    }
}

fn mark_reloaded() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64());
    metrics::gauge!(RELOAD_TIMESTAMP).set(now);
}
