//! The order of a clean shutdown: stop the background tasks, report
//! `NOT_SERVING`, drain, withdraw the internal credential, write what is
//! pending.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::domain::{InternalCredentials, LastUsed};
use crate::health::Health;
use crate::store::SeaStore;

/// How long shutdown waits to withdraw the internal credential, and to
/// write the pending last-used times.
const RETIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for the audit log copy to be written out.
pub(super) const AUDIT_LOG_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for the database pool to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Once `shutdown` completes: stop the background tasks, report
/// `NOT_SERVING`, start the drain deadline and withdraw the internal
/// credential (in its own task, so a slow database cannot delay the drain).
pub(super) async fn on_shutdown(
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

/// Writes the last-used times still pending, unless the database takes
/// longer than a shutdown should wait.
pub(super) async fn flush_on_exit(last_used: &LastUsed) {
    match tokio::time::timeout(RETIRE_TIMEOUT, last_used.flush()).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "could not write the last-used times"),
        Err(_) => tracing::warn!("writing the last-used times timed out"),
    }
}

/// Withdraws this process's internal credential; other replicas refuse it
/// from now on (or, if the database is slow or unreachable, after the
/// liveness bound).
pub(super) async fn retire(internal: &InternalCredentials) {
    match tokio::time::timeout(RETIRE_TIMEOUT, internal.retire()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "could not withdraw the internal credential"),
        Err(_) => tracing::warn!("withdrawing the internal credential timed out"),
    }
}

/// Closes the database pool, waiting at most [`CLOSE_TIMEOUT`]: a statement
/// of an aborted background task can still hold a connection (waiting for a
/// lock, or on a dead connection), and the process must exit all the same.
pub(super) async fn close(sea: SeaStore) {
    if tokio::time::timeout(CLOSE_TIMEOUT, sea.close())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_ms = CLOSE_TIMEOUT.as_millis(),
            "the database pool did not close in time; exiting without waiting for it"
        );
    }
}
