//! One secret file with its shared in-process cache.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use super::disk;
use crate::Secret;

/// One secret on disk, with an in-process cache so the hot path (checking
/// every inbound request) does not read the file each time.
///
/// Clones share the cache, so a [`save`](Self::save) through one clone is
/// seen by [`load`](Self::load) on all of them. Writes by another process
/// are seen once the value is not cached (a missing value is not cached,
/// except by the handles that check the next and previous inbound secrets)
/// or after [`reset_cache`](Self::reset_cache).
///
/// On Unix, a file in a directory that group or others may write to (and
/// that is not sticky, as `/tmp` is) is neither saved nor loaded: another
/// user could swap it. A symlink at the path is never followed.
#[derive(Clone)]
pub struct SecretFile {
    /// As given; the shared cache knows the file by its canonical path.
    path: PathBuf,
    cache: Arc<Mutex<Cached>>,
    /// Whether this handle trusts a cached "missing" (see
    /// [`caching_absence`](Self::caching_absence)); other handles of the
    /// same file read the disk again instead.
    trust_absence: bool,
}

/// What the process knows about one file.
#[derive(Clone, Default)]
enum Cached {
    /// Read the file.
    #[default]
    Unknown,
    /// The file was missing or empty when last read.
    Missing,
    Present(Secret),
}

impl SecretFile {
    /// The secret stored at `path`. Every `SecretFile` of one file in the
    /// process shares one cache, however its path is spelt (symlinks, `.`,
    /// `..` in the directory), so a save through any of them is seen by all
    /// (e.g. the layer's and the registration's), not only by clones.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        type Shared = Mutex<HashMap<PathBuf, Weak<Mutex<Cached>>>>;
        static SHARED: OnceLock<Shared> = OnceLock::new();
        let path = path.into();
        let key = disk::canonical(&path);
        let mut shared = SHARED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(cache) = shared.get(&key).and_then(Weak::upgrade) {
            return Self {
                path,
                cache,
                trust_absence: false,
            };
        }
        shared.retain(|_, cache| cache.strong_count() > 0);
        let cache = Arc::new(Mutex::new(Cached::Unknown));
        shared.insert(key, Arc::downgrade(&cache));
        Self {
            path,
            cache,
            trust_absence: false,
        }
    }

    /// This handle, but also remembering that the file is missing, so that
    /// checking every request does not touch the disk for files that are
    /// usually absent (the next and previous inbound secrets). A write by
    /// another process is then seen only after
    /// [`reset_cache`](Self::reset_cache); writes through any handle in this
    /// process reset it.
    pub(super) fn caching_absence(mut self) -> Self {
        self.trust_absence = true;
        self
    }

    /// Where the secret is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored secret, surrounding whitespace trimmed; `None` when the
    /// file is missing or empty, and whenever [`try_load`](Self::try_load)
    /// fails. Callers must treat `None` as "reject", never as "skip the
    /// check".
    pub fn load(&self) -> Option<Secret> {
        self.try_load().ok().flatten()
    }

    /// As [`load`](Self::load), but saying why a secret could not be read:
    /// its directory is writable by other users, the path is a symlink, the
    /// file is unreadable, not UTF-8 or too large. `Ok(None)`: missing or
    /// empty.
    pub fn try_load(&self) -> Result<Option<Secret>, LoadError> {
        // The lock is held across the read on purpose: a save that renames
        // its file while a stale read is under way resets the cache only
        // after that read has stored its value, so the stale value never
        // outlives the save.
        let mut cache = self.cache();
        match &*cache {
            Cached::Present(secret) => return Ok(Some(secret.clone())),
            Cached::Missing if self.trust_absence => return Ok(None),
            Cached::Missing | Cached::Unknown => {}
        }
        let secret = disk::read_secret(self.path()).map_err(|source| LoadError {
            path: self.path.clone(),
            source,
        })?;
        *cache = match &secret {
            Some(secret) => Cached::Present(secret.clone()),
            None => Cached::Missing,
        };
        Ok(secret)
    }

    /// Writes `secret` and resets the cache, so the next [`load`](Self::load)
    /// returns the new value.
    ///
    /// A secret that is empty or only whitespace is ignored (`Ok`), so a
    /// response without a value never wipes a good one. The parent directory
    /// is created when missing (mode 0700 on Unix), and refused when other
    /// users may write to it (see [`SecretFile`]). The value goes to a new
    /// temporary file in the same directory, created with mode 0600 (so it is
    /// never readable by others, not even for a moment), is flushed to disk,
    /// then atomically renamed over the target: a concurrent reader sees the
    /// old or the new value, never a partial file. On failure the temporary
    /// file is removed and the target is left as it was.
    pub fn save(&self, secret: &Secret) -> Result<(), SaveError> {
        if secret.expose().trim().is_empty() {
            return Ok(());
        }
        let result = disk::write_atomically(self.path(), secret.expose().as_bytes());
        // Reset even after a failure: the cache must never claim to know
        // better than the disk.
        self.reset_cache();
        result.map_err(|source| SaveError {
            path: self.path().to_owned(),
            source,
        })
    }

    /// Deletes the file (a missing one is fine) and resets the cache, so a
    /// secret that must no longer be accepted is gone. The directory is
    /// checked as for [`save`](Self::save); a symlink at the path is removed
    /// itself, never its target.
    pub fn remove(&self) -> Result<(), SaveError> {
        let result = disk::remove(self.path());
        self.reset_cache();
        result.map_err(|source| SaveError {
            path: self.path().to_owned(),
            source,
        })
    }

    /// Drops the cached value, so the next [`load`](Self::load) reads the
    /// file (e.g. after another process rewrote it).
    pub fn reset_cache(&self) {
        *self.cache() = Cached::Unknown;
    }

    fn cache(&self) -> MutexGuard<'_, Cached> {
        // A panic while the lock was held cannot leave the value half
        // written, so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the path: the value is secret, and taking the cache lock here
        // could deadlock a caller formatting while it loads.
        f.debug_struct("SecretFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A secret could not be written; the file on disk is unchanged.
#[derive(Debug, thiserror::Error)]
#[error("cannot save a secret to {}", path.display())]
pub struct SaveError {
    pub(super) path: PathBuf,
    #[source]
    pub(super) source: io::Error,
}

impl SaveError {
    /// The file that was being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

/// A secret could not be read (see [`SecretFile::try_load`]).
#[derive(Debug, thiserror::Error)]
#[error("cannot load a secret from {}", path.display())]
pub struct LoadError {
    pub(super) path: PathBuf,
    #[source]
    pub(super) source: io::Error,
}

impl LoadError {
    /// The file that was being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying I/O error, or why the file was refused.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}
