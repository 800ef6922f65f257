//! The workspace runtime's secrets on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ExpiringSecretFile, InboundSecrets, SecretFile};

/// Environment variable naming the directory of the runtime's secret files.
pub const CONFIGS_DIR_ENV: &str = "CONFIGS_DIR";
/// The directory used when [`CONFIGS_DIR_ENV`] is unset or empty.
pub const DEFAULT_CONFIGS_DIR: &str = "/configs";
/// File name of the (current) platform inbound secret inside the configs
/// directory.
pub const INBOUND_SECRET_FILE: &str = ".platform_inbound_secret";
/// File name of the next platform inbound secret, present while a rotation
/// is not yet confirmed.
pub const NEXT_INBOUND_SECRET_FILE: &str = ".platform_inbound_secret.next";
/// File name of the previous platform inbound secret and its deadline,
/// present during the grace period after a rotation (see
/// [`ExpiringSecretFile`] for the format).
pub const PREVIOUS_INBOUND_SECRET_FILE: &str = ".platform_inbound_secret.previous";
/// File name of the workspace auth token inside the configs directory.
pub const AUTH_TOKEN_FILE: &str = ".auth_token";

/// The secret files a workspace runtime keeps in its configs directory.
/// Cloning is cheap, and clones share each file's cache.
///
/// It is also an [`InboundSecretSource`](super::InboundSecretSource)
/// accepting every inbound secret valid now (see [`InboundSecrets`]).
#[derive(Clone, Debug)]
pub struct WorkspaceFiles {
    dir: PathBuf,
    inbound_secret: SecretFile,
    next_inbound_secret: SecretFile,
    previous_inbound_secret: ExpiringSecretFile,
    auth_token: SecretFile,
    inbound_secrets: InboundSecrets,
    /// Held across a whole registration, so that two registrations of one
    /// runtime never write their responses in the opposite order of the
    /// server's answers (an older answer written last could drop a secret
    /// the platform already uses).
    registering: Arc<tokio::sync::Mutex<()>>,
}

impl WorkspaceFiles {
    /// The files in `dir` (used as is; created on the first save).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let inbound_secret = SecretFile::new(dir.join(INBOUND_SECRET_FILE));
        let next_inbound_secret = SecretFile::new(dir.join(NEXT_INBOUND_SECRET_FILE));
        let previous_inbound_secret =
            ExpiringSecretFile::new(dir.join(PREVIOUS_INBOUND_SECRET_FILE));
        Self {
            inbound_secrets: InboundSecrets::new(
                &inbound_secret,
                &next_inbound_secret,
                &previous_inbound_secret,
            ),
            inbound_secret,
            next_inbound_secret,
            previous_inbound_secret,
            auth_token: SecretFile::new(dir.join(AUTH_TOKEN_FILE)),
            registering: Arc::default(),
            dir,
        }
    }

    /// The files in `$CONFIGS_DIR`, or in [`DEFAULT_CONFIGS_DIR`] when it is
    /// unset or empty (an empty value would otherwise mean the working
    /// directory, which is never where a runtime's secrets belong).
    pub fn from_env() -> Self {
        let dir = std::env::var_os(CONFIGS_DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_CONFIGS_DIR), PathBuf::from);
        Self::in_dir(dir)
    }

    /// The configs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `.platform_inbound_secret`: what the platform presents when it calls
    /// the runtime.
    pub fn inbound_secret(&self) -> &SecretFile {
        &self.inbound_secret
    }

    /// `.platform_inbound_secret.next`: what the platform will present once
    /// the runtime has confirmed a rotation (accepted from the moment it is
    /// known).
    pub fn next_inbound_secret(&self) -> &SecretFile {
        &self.next_inbound_secret
    }

    /// `.platform_inbound_secret.previous`: what the platform presented
    /// before the last rotation, accepted until its deadline.
    pub fn previous_inbound_secret(&self) -> &ExpiringSecretFile {
        &self.previous_inbound_secret
    }

    /// `.auth_token`: what the runtime presents when it calls Tessera.
    pub fn auth_token(&self) -> &SecretFile {
        &self.auth_token
    }

    /// The check of inbound calls against the current, next and previous
    /// secrets; clones share its re-read rate limit.
    pub fn inbound_secrets(&self) -> &InboundSecrets {
        &self.inbound_secrets
    }

    pub(super) fn registering(&self) -> &tokio::sync::Mutex<()> {
        &self.registering
    }
}
