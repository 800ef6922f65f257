//! A secret with a deadline in one file: the previous inbound secret, still
//! accepted for a grace period after a rotation.
//!
//! The file holds two lines, the deadline as Unix seconds with nine digits
//! of nanoseconds, then the secret:
//!
//! ```text
//! 1700000600.000000000
//! tsr_wsi_…
//! ```
//!
//! One file rather than a secret file plus a deadline file: the pair is
//! replaced by a single atomic rename, so neither a crash nor a concurrent
//! reader can ever pair a secret with another rotation's (later) deadline.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{LoadError, SaveError, SecretFile};
use crate::Secret;

/// A secret and the instant from which it is no longer accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiringSecret {
    /// The secret (its `Debug` is redacted).
    pub secret: Secret,
    /// Accepted strictly before this instant, never from it on.
    pub valid_until: SystemTime,
}

/// A [`SecretFile`] holding an [`ExpiringSecret`]: same rules on disk (mode
/// 0600 from the first byte, atomic rename, no symlinks, shared cache).
#[derive(Clone)]
pub struct ExpiringSecretFile {
    file: SecretFile,
}

impl ExpiringSecretFile {
    /// The expiring secret stored at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            file: SecretFile::new(path),
        }
    }

    pub(super) fn caching_absence(self) -> Self {
        Self {
            file: self.file.caching_absence(),
        }
    }

    /// Where it is stored.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The secret if it is stored and still valid at `now`; `None` when it
    /// is missing, unreadable, malformed, or `now` is at or past its
    /// deadline (the file may remain: the deadline alone decides).
    pub fn load_valid_at(&self, now: SystemTime) -> Option<Secret> {
        self.try_load()
            .ok()
            .flatten()
            .filter(|stored| now < stored.valid_until)
            .map(|stored| stored.secret)
    }

    /// The stored secret and its deadline, expired or not. `Ok(None)`: the
    /// file is missing or empty. A file not in the format above is an error
    /// (which never quotes its content).
    pub fn try_load(&self) -> Result<Option<ExpiringSecret>, LoadError> {
        let Some(raw) = self.file.try_load()? else {
            return Ok(None);
        };
        parse(raw.expose()).map(Some).ok_or_else(|| LoadError {
            path: self.path().to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "not a deadline line followed by a secret",
            ),
        })
    }

    /// Stores `secret` with its deadline, as [`SecretFile::save`] does (an
    /// empty secret is ignored). A secret with a line break is refused: it
    /// could not be read back as written.
    pub fn save(&self, secret: &Secret, valid_until: SystemTime) -> Result<(), SaveError> {
        let value = secret.expose().trim();
        if value.is_empty() {
            return Ok(());
        }
        if value.contains(['\n', '\r']) {
            return Err(SaveError {
                path: self.path().to_owned(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "secret has a line break"),
            });
        }
        // Before 1970 means long expired; the epoch says the same.
        let since_epoch = valid_until
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let contents = Secret::new(format!(
            "{}.{:09}\n{value}\n",
            since_epoch.as_secs(),
            since_epoch.subsec_nanos()
        ));
        self.file.save(&contents)
    }

    /// Deletes the file, as [`SecretFile::remove`] does.
    pub fn remove(&self) -> Result<(), SaveError> {
        self.file.remove()
    }

    /// Drops the cached value, as [`SecretFile::reset_cache`] does.
    pub fn reset_cache(&self) {
        self.file.reset_cache();
    }
}

fn parse(raw: &str) -> Option<ExpiringSecret> {
    let (deadline, secret) = raw.split_once('\n')?;
    let secret = secret.trim();
    let (secs, nanos) = deadline.trim().split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if secret.is_empty()
        || secret.contains(['\n', '\r'])
        || !digits(secs)
        || nanos.len() != 9
        || !digits(nanos)
    {
        return None;
    }
    let since_epoch = Duration::new(secs.parse().ok()?, nanos.parse().ok()?);
    Some(ExpiringSecret {
        secret: Secret::new(secret),
        valid_until: UNIX_EPOCH.checked_add(since_epoch)?,
    })
}

impl fmt::Debug for ExpiringSecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiringSecretFile")
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_written_format() {
        let parsed = parse("1700000600.000000005\ntsr_wsi_x").unwrap();
        assert_eq!(parsed.secret.expose(), "tsr_wsi_x");
        assert_eq!(
            parsed.valid_until,
            UNIX_EPOCH + Duration::new(1_700_000_600, 5)
        );
        for bad in [
            "tsr_wsi_x",
            "1700000600\ntsr_wsi_x",
            "1700000600.5\ntsr_wsi_x",
            "-1.000000000\ntsr_wsi_x",
            "1700000600.000000000\n",
            "1700000600.000000000\na\nb",
            "x.000000000\ntsr_wsi_x",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
