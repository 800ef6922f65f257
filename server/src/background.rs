//! Periodic work: the reaper and the internal credential's heartbeat.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::app::Tessera;
use crate::clock::now_ms;
use crate::internal::InternalCredentials;
use crate::store::Store;

/// Every `interval`, deletes expired tickets and the internal credentials
/// of processes that stopped heartbeating, until `stop` turns true.
pub async fn reap(
    app: Arc<Tessera>,
    store: Arc<dyn Store>,
    internal: Arc<InternalCredentials>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match app.reap_tickets().await {
            Ok(0) => {}
            Ok(count) => tracing::debug!(count, "expired tickets reaped"),
            Err(err) => tracing::warn!(error = %err, "ticket reaper failed"),
        }
        let cutoff = now_ms() - internal.liveness_ms();
        if let Err(err) = store.delete_stale_internal_credentials(cutoff).await {
            tracing::warn!(error = %err, "internal credential reaper failed");
        }
    }
}

/// Renews this process's internal credential every `interval`.
pub async fn heartbeat(
    internal: Arc<InternalCredentials>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(err) = internal.heartbeat().await {
            tracing::warn!(error = %err, "internal credential heartbeat failed");
        }
    }
}
