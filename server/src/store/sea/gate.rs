//! One permit per pooled connection: every statement on the pool waits for
//! its connection here, holding a few bytes, instead of inside sea-orm and
//! sqlx, where a pending call holds about 8 KiB (with 1,000 calls waiting,
//! that was 40% of the heap under valgrind massif). Batch workers take a
//! permit per batch like any other caller, so the pool is never asked for
//! more connections than it has.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::StoreError;

/// Waits for a free pooled connection.
#[derive(Clone, Debug)]
pub(super) struct Gate {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl Gate {
    /// A gate for a pool of `connections`; a caller that waits `timeout`
    /// finds the database unavailable, as it would waiting on the pool.
    pub(super) fn new(connections: u32, timeout: Duration) -> Self {
        let permits = usize::try_from(connections).unwrap_or(1).max(1);
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            timeout,
        }
    }

    /// A permit to use one pooled connection, held until dropped.
    pub(super) async fn enter(&self) -> Result<OwnedSemaphorePermit, StoreError> {
        let permit = tokio::time::timeout(self.timeout, self.permits.clone().acquire_owned());
        match permit.await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(StoreError::Unavailable(
                "timed out waiting for a database connection".to_owned(),
            )),
        }
    }
}
