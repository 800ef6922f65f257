//! Periodic work: the reaper, the internal credential's heartbeat and the
//! last-used flush.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::domain::{InternalCredentials, LastUsed, Tessera};
use crate::store::{Store, delete_in_chunks};

/// Runs `tick` every `interval` until `stop` turns true (or its sender goes).
pub(crate) async fn every<F, Fut>(interval: Duration, mut stop: watch::Receiver<bool>, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if *stop.borrow() {
            return;
        }
        tick().await;
    }
}

/// Deletes expired tickets, audit entries older than `audit_retention`,
/// stale failure counters, and the internal credentials of processes that
/// stopped heartbeating.
pub(crate) async fn reap(
    app: &Tessera,
    store: &dyn Store,
    internal: &InternalCredentials,
    audit_retention: Duration,
) {
    match app.tickets.reap().await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "expired tickets reaped"),
        Err(err) => tracing::warn!(error = %err, "ticket reaper failed"),
    }
    let retention = i64::try_from(audit_retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = store.now_ms().saturating_sub(retention);
    match delete_in_chunks(|limit| store.delete_audit_before(cutoff, limit)).await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "audit entries past their retention pruned"),
        Err(err) => tracing::warn!(error = %err, "audit pruning failed"),
    }
    match delete_in_chunks(|limit| store.delete_stale_auth_failures(limit)).await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "stale failure counters pruned"),
        Err(err) => tracing::warn!(error = %err, "failure counter pruning failed"),
    }
    let cutoff = store.now_ms() - internal.liveness_ms();
    if let Err(err) = store.delete_stale_internal_credentials(cutoff).await {
        tracing::warn!(error = %err, "internal credential reaper failed");
    }
}

/// Renews this process's internal credential.
pub(crate) async fn heartbeat(internal: Arc<InternalCredentials>) {
    if let Err(err) = internal.heartbeat().await {
        tracing::warn!(error = %err, "internal credential heartbeat failed");
    }
}

/// Writes the last-used times noted since the last flush.
pub(crate) async fn flush_last_used(last_used: Arc<LastUsed>) {
    match last_used.flush().await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "last-used times written"),
        Err(err) => tracing::warn!(error = %err, "writing the last-used times failed"),
    }
}
