//! The inbound secrets a runtime accepts at a given moment: the current
//! one, the next one (from the moment it is known), and the previous one
//! until its deadline.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::{ExpiringSecretFile, InboundSecretSource, SecretFile, inbound_authorized_any};
use crate::Secret;

/// At most one re-read of the files per this interval when a presented
/// bearer matches nothing cached: enough to follow another process's writes
/// within a second, while a flood of wrong bearers costs no disk reads.
pub const REREAD_INTERVAL: Duration = Duration::from_secs(1);

/// Checks the platform's calls against every inbound secret valid now, read
/// from the configs directory (see
/// [`WorkspaceFiles::inbound_secrets`](super::WorkspaceFiles::inbound_secrets)).
///
/// Fails closed: with no file on disk every call is refused. The files are
/// cached in-process (writes in this process reset the cache at once). When
/// a presented bearer matches nothing cached, the files are read again, at
/// most once per [`REREAD_INTERVAL`], so processes sharing one configs
/// directory stay coherent: a secret written by another process is accepted
/// from the first call after the next re-read.
#[derive(Clone)]
pub struct InboundSecrets {
    current: SecretFile,
    next: SecretFile,
    previous: ExpiringSecretFile,
    last_reread: Arc<Mutex<Option<Instant>>>,
}

impl InboundSecrets {
    pub(super) fn new(
        current: &SecretFile,
        next: &SecretFile,
        previous: &ExpiringSecretFile,
    ) -> Self {
        Self {
            current: current.clone().caching_absence(),
            next: next.clone().caching_absence(),
            previous: previous.clone().caching_absence(),
            last_reread: Arc::default(),
        }
    }

    /// Whether `authorization_header` is exactly `Bearer <secret>` for a
    /// secret accepted now (as [`authorizes_at`](Self::authorizes_at)).
    pub fn authorizes_now(&self, authorization_header: Option<&str>) -> bool {
        self.authorizes_at(authorization_header, SystemTime::now())
    }

    /// Whether `authorization_header` is exactly `Bearer <secret>` for one of
    /// the [`accepted_at`](Self::accepted_at) secrets, each compared in
    /// constant time (as [`inbound_authorized`](super::inbound_authorized)).
    pub fn authorizes_at(&self, authorization_header: Option<&str>, now: SystemTime) -> bool {
        let Some(header) = authorization_header else {
            return false;
        };
        if inbound_authorized_any(&self.accepted_at(now), Some(header)) {
            return true;
        }
        // Only a bearer could ever match, so only a bearer earns a re-read.
        let is_bearer = header
            .strip_prefix("Bearer ")
            .is_some_and(|s| !s.is_empty());
        if !is_bearer || !self.reread_due() {
            return false;
        }
        self.reset_cache();
        inbound_authorized_any(&self.accepted_at(now), Some(header))
    }

    /// The secrets accepted at `now`: the next one, the current one, and the
    /// previous one if `now` is before its deadline. Read in that order:
    /// registration writes a secret's new place before removing its old one
    /// (current before removing next, previous before replacing current), so
    /// a secret moving between files is never missed by a concurrent check.
    pub fn accepted_at(&self, now: SystemTime) -> Vec<Secret> {
        let mut accepted = Vec::with_capacity(3);
        accepted.extend(self.next.load());
        accepted.extend(self.current.load());
        accepted.extend(self.previous.load_valid_at(now));
        accepted
    }

    /// Drops the cached values of all three files.
    pub fn reset_cache(&self) {
        self.next.reset_cache();
        self.current.reset_cache();
        self.previous.reset_cache();
    }

    fn reread_due(&self) -> bool {
        let mut last = self
            .last_reread
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= REREAD_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

impl InboundSecretSource for InboundSecrets {
    fn current(&self) -> Option<Secret> {
        self.current.load()
    }

    fn authorizes(&self, authorization_header: Option<&str>) -> bool {
        self.authorizes_now(authorization_header)
    }
}

impl InboundSecretSource for super::WorkspaceFiles {
    fn current(&self) -> Option<Secret> {
        self.inbound_secret().load()
    }

    fn authorizes(&self, authorization_header: Option<&str>) -> bool {
        self.inbound_secrets().authorizes_now(authorization_header)
    }
}

impl fmt::Debug for InboundSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSecrets")
            .field("current", &self.current.path())
            .finish_non_exhaustive()
    }
}
