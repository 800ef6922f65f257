//! Registering again and again, so that a rotation is picked up and
//! confirmed without a restart.

use std::time::Duration;

use super::{RegisterError, Registration, WorkspaceFiles, register_and_persist};
use crate::{Client, Secret};

/// When [`keep_registered`] registers again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Schedule {
    /// Between registrations while no rotation waits: how soon a new
    /// rotation is noticed (it is learnt only by registering).
    pub idle: Duration,
    /// After a failed registration.
    pub retry: Duration,
}

impl Default for Schedule {
    /// Every 5 minutes (half the default grace period), and 30 seconds after
    /// a failure.
    fn default() -> Self {
        Self::new(Duration::from_secs(5 * 60), Duration::from_secs(30))
    }
}

impl Schedule {
    /// A schedule registering every `idle` and `retry` after a failure.
    pub fn new(idle: Duration, retry: Duration) -> Self {
        Self { idle, retry }
    }

    /// How long to wait after `result` before registering again: a little
    /// less than Tessera's `register_again_within` while a rotation waits
    /// (so the call lands within it), capped by `idle`; `retry` (or less)
    /// after a failure, including a registration whose files could not be
    /// saved.
    pub fn delay_after(&self, result: &Result<Registration, RegisterError>) -> Duration {
        let (registration, cap) = match result {
            Ok(registration) => (registration, self.idle),
            Err(RegisterError::Persist { registration, .. }) => (&**registration, self.retry),
            Err(_) => return self.retry,
        };
        registration
            .register_again_within
            .map_or(cap, |within| within.saturating_sub(within / 10).min(cap))
    }
}

/// Registers the runtime now and then forever, as [`register_and_persist`]
/// does, so a rotation finishes without a restart: while one waits for its
/// confirmation Tessera answers with `register_again_within` (half its grace
/// period) and this registers again within it; otherwise every
/// [`Schedule::idle`]. `report` sees every result (e.g. to log failures;
/// registration goes on regardless).
///
/// Never returns: spawn it (`tokio::spawn`) and abort the task to stop.
/// Its first registration is immediate, so it can replace the call at start.
pub async fn keep_registered<F>(
    client: Client,
    workspace_id: String,
    registration_token: Secret,
    files: WorkspaceFiles,
    schedule: Schedule,
    mut report: F,
) where
    F: FnMut(&Result<Registration, RegisterError>) + Send,
{
    loop {
        let result =
            register_and_persist(&client, &workspace_id, &registration_token, &files).await;
        report(&result);
        tokio::time::sleep(schedule.delay_after(&result)).await;
    }
}
