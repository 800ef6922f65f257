//! Periodic work: the reaper, the internal credential's heartbeat and the
//! last-used flush.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::domain::{InternalCredentials, LastUsed, Tessera};
use crate::store::{CredentialKind, Store, delete_in_chunks};

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

/// How far ahead `tessera_credentials_expiring` looks: a week.
const EXPIRING_WITHIN_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// How long the reaper keeps what it prunes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retention {
    /// Audit entries, from when they were recorded.
    pub audit: Duration,
    /// Records of revoked or expired credentials, from when they ended.
    pub credentials: Duration,
}

/// Drops the inbound secrets whose grace ended; deletes expired tickets, audit entries and ended credential records
/// past their `retention`, stale failure counters, and the internal
/// credentials of processes that stopped heartbeating; refreshes the count
/// of credentials about to expire.
pub(crate) async fn reap(
    app: &Tessera,
    store: &dyn Store,
    internal: &InternalCredentials,
    retention: Retention,
) {
    match app.tickets.reap().await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "expired tickets reaped"),
        Err(err) => tracing::warn!(error = %err, "ticket reaper failed"),
    }
    match app.workspaces.expire_previous_secrets().await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "inbound secrets past their grace dropped"),
        Err(err) => tracing::warn!(error = %err, "inbound secret grace sweep failed"),
    }
    let cutoff = retention_cutoff(store, retention.audit);
    match delete_in_chunks(|limit| store.delete_audit_before(cutoff, limit)).await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "audit entries past their retention pruned"),
        Err(err) => tracing::warn!(error = %err, "audit pruning failed"),
    }
    let cutoff = retention_cutoff(store, retention.credentials);
    match delete_in_chunks(|limit| store.delete_credentials_ended_before(cutoff, limit)).await {
        Ok(0) => {}
        Ok(count) => tracing::debug!(count, "ended credential records pruned"),
        Err(err) => tracing::warn!(error = %err, "credential record pruning failed"),
    }
    count_expiring(store).await;
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

/// The database time `retention` ago.
fn retention_cutoff(store: &dyn Store, retention: Duration) -> i64 {
    let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    store.now_ms().saturating_sub(retention)
}

/// Sets `tessera_credentials_expiring{kind}`: the live credentials of each
/// kind that expire within a week (0 for a kind with none).
async fn count_expiring(store: &dyn Store) {
    let now = store.now_ms();
    let until = now.saturating_add(EXPIRING_WITHIN_MS);
    let counts = match store.count_expiring_credentials(now, until).await {
        Ok(counts) => counts,
        Err(err) => {
            tracing::warn!(error = %err, "counting the credentials about to expire failed");
            return;
        }
    };
    for kind in CredentialKind::STORED {
        let count = counts
            .iter()
            .find(|(counted, _)| *counted == kind)
            .map_or(0, |(_, count)| *count);
        metrics::gauge!("tessera_credentials_expiring", "kind" => kind.as_str()).set(count as f64);
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
