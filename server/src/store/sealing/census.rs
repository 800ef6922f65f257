//! How many stored values are plaintext or under each key, and whether the
//! configured keys can open them all.

use std::collections::BTreeMap;
use std::fmt;

use super::{Keyring, key_id_of};

/// The retrievable values stored, by how they are stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealedCensus {
    /// Values in plaintext (from before encryption, or written without a key).
    pub plaintext: u64,
    /// Values sealed under each key id.
    pub by_key: BTreeMap<String, u64>,
    /// Values marked sealed (`enc:`) in a form this version cannot read.
    pub unreadable: u64,
}

impl SealedCensus {
    /// Counts `count` values like `value`: a stored value, or its first
    /// [`super::HEADER_LEN`] characters; `None` counts as plaintext.
    pub fn add(&mut self, value: Option<&str>, count: u64) {
        match value.map(key_id_of) {
            None | Some(Ok(None)) => self.plaintext += count,
            Some(Ok(Some(key_id))) => *self.by_key.entry(key_id.to_owned()).or_default() += count,
            Some(Err(_)) => self.unreadable += count,
        }
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &SealedCensus) {
        self.plaintext += other.plaintext;
        self.unreadable += other.unreadable;
        for (key_id, count) in &other.by_key {
            *self.by_key.entry(key_id.clone()).or_default() += count;
        }
    }

    /// True when some value is not under the key `current`: plaintext,
    /// under another key, or unreadable.
    pub fn stale(&self, current: &str) -> bool {
        self.plaintext > 0
            || self.unreadable > 0
            || self.by_key.keys().any(|key_id| key_id != current)
    }

    /// Values stored in every form.
    pub fn total(&self) -> u64 {
        self.plaintext + self.unreadable + self.by_key.values().sum::<u64>()
    }

    /// Fine when `keys` open every value counted; else which keys are
    /// missing, for a refusal to start.
    pub fn require(&self, keys: &Keyring) -> Result<(), MissingKeys> {
        let missing: BTreeMap<String, u64> = self
            .by_key
            .iter()
            .filter(|(key_id, _)| !keys.ids().any(|id| id == key_id.as_str()))
            .map(|(key_id, count)| (key_id.clone(), *count))
            .collect();
        if missing.is_empty() && self.unreadable == 0 {
            return Ok(());
        }
        Err(MissingKeys {
            missing,
            unreadable: self.unreadable,
            configured: keys.ids().map(str::to_owned).collect(),
        })
    }
}

/// Values the configured keys cannot open; its message names the key ids
/// (never a key) and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingKeys {
    /// Values under each key id that is not configured.
    pub missing: BTreeMap<String, u64>,
    /// Values in no form this version reads.
    pub unreadable: u64,
    /// The ids of the keys configured.
    pub configured: Vec<String>,
}

impl fmt::Display for MissingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.missing.is_empty() {
            let count: u64 = self.missing.values().sum();
            let ids: Vec<&str> = self.missing.keys().map(String::as_str).collect();
            write!(
                f,
                "the database holds {count} secret(s) encrypted under key id(s) {}, ",
                ids.join(", ")
            )?;
            if self.configured.is_empty() {
                write!(
                    f,
                    "and no encryption key is configured: set TESSERA_ENCRYPTION_KEY \
                     (or TESSERA_ENCRYPTION_KEY_FILE) to a list that includes them"
                )?;
            } else {
                write!(
                    f,
                    "which the configured encryption keys (key ids {}) lack: add them to \
                     TESSERA_ENCRYPTION_KEY (or TESSERA_ENCRYPTION_KEY_FILE)",
                    self.configured.join(", ")
                )?;
            }
        }
        if self.unreadable > 0 {
            if !self.missing.is_empty() {
                write!(f, "; and ")?;
            }
            write!(
                f,
                "the database holds {} value(s) marked encrypted in a format this version \
                 cannot read",
                self.unreadable
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for MissingKeys {}

/// Logs, at startup, which keys are configured and how the stored values
/// are sealed (key ids and counts only), and warns of plaintext left when
/// a key is configured.
pub fn log_census(census: &SealedCensus, keys: &Keyring) {
    let Some(current) = keys.current_id() else {
        return;
    };
    let key_ids: Vec<&str> = keys.ids().collect();
    tracing::info!(
        current_key_id = current,
        key_ids = %key_ids.join(","),
        values_by_key = ?census.by_key,
        "encryption at rest on"
    );
    if census.plaintext > 0 {
        tracing::warn!(
            count = census.plaintext,
            "inbound secrets stored in plaintext remain; `tessera rewrap` encrypts them"
        );
    }
}
