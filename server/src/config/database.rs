//! Where the data lives, and the keys of the secrets in it.

use std::path::PathBuf;

use clap::Args;
use zeroize::Zeroizing;

use crate::store::DatabaseUrl;
use crate::store::sealing::Keyring;

/// Where the data lives, and the keys of the secrets in it. `Debug` and
/// `--help` hide the URL (it may hold a password) and the keys;
/// [`DatabaseArgs::url`] parses the URL into a form that masks it.
#[derive(Clone, Args)]
pub(crate) struct DatabaseArgs {
    /// `sqlite:<file>` (created on first run) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite:tessera.db",
        hide_env_values = true
    )]
    database_url: String,
    /// Encryption key(s) of the inbound secrets at rest: 256-bit keys in
    /// standard base64 (`tessera gen-secret --key`), comma-separated during
    /// a rotation; the first encrypts, all decrypt. Prefer the environment
    /// or the file: a command line is visible to other users.
    #[arg(long, env = "TESSERA_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    /// A file holding what `TESSERA_ENCRYPTION_KEY` would.
    #[arg(long, env = "TESSERA_ENCRYPTION_KEY_FILE")]
    encryption_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs").finish_non_exhaustive()
    }
}

impl DatabaseArgs {
    /// The parsed URL; the error says what is wrong, the password masked.
    pub(crate) fn url(&self) -> Result<DatabaseUrl, String> {
        DatabaseUrl::parse(&self.database_url).map_err(|err| err.to_string())
    }

    /// The configured encryption keys (none: secrets stay plaintext). The
    /// error names the variable, never a key.
    pub(crate) fn keys(&self) -> Result<Keyring, String> {
        const KEY: &str = "TESSERA_ENCRYPTION_KEY";
        const FILE: &str = "TESSERA_ENCRYPTION_KEY_FILE";
        let (list, source) = match (&self.encryption_key, &self.encryption_key_file) {
            (None, None) => return Ok(Keyring::default()),
            (Some(_), Some(_)) => return Err(format!("{KEY} and {FILE} are both set; set one")),
            (Some(list), None) => (Zeroizing::new(list.clone()), KEY.to_owned()),
            (None, Some(path)) => {
                let read = std::fs::read_to_string(path)
                    .map_err(|err| format!("{FILE}: cannot read {}: {err}", path.display()))?;
                (Zeroizing::new(read), format!("{FILE} ({})", path.display()))
            }
        };
        Keyring::parse(&list).map_err(|err| format!("{source}: {err}"))
    }
}
