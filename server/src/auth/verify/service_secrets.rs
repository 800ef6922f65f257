//! Shared secrets for in-cluster services: `TESSERA_SERVICE_TOKEN_<NAME>`.
//!
//! Each configured secret is kept only as its SHA-256. A presented bearer is
//! hashed and compared with every configured digest in constant time, with
//! no early exit, so timing reveals neither which secret matched nor how
//! long any of them is.

use std::sync::OnceLock;

use metrics::Counter;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use tessera_client::token::{self, TokenKind};

/// Prefix of the environment variables that configure service secrets.
pub(super) const ENV_PREFIX: &str = "TESSERA_SERVICE_TOKEN_";
/// Shortest secret accepted; anything shorter is a misconfiguration.
pub(super) const MIN_SECRET_LEN: usize = 32;
/// Secrets one variable may carry: the current one and the next (rotation).
const MAX_SECRETS_PER_NAME: usize = 2;

/// A service that may authenticate with a shared secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceAccount {
    /// Lower-cased name from the variable, e.g. `scheduler`.
    pub name: String,
    /// `<name>@system.local`.
    pub email: String,
    /// Capitalised name, e.g. `Scheduler`.
    pub display_name: String,
}

impl ServiceAccount {
    fn new(raw_name: &str) -> Self {
        let name = raw_name.to_ascii_lowercase();
        let display_name = name
            .split('_')
            .filter(|word| !word.is_empty())
            .map(capitalise)
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            email: format!("{name}@system.local"),
            name,
            display_name,
        }
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The configured service secrets. `Debug` shows names only.
#[derive(Clone, Default)]
pub(crate) struct ServiceSecrets {
    accounts: Vec<ServiceAccount>,
    /// Every enabled secret, as its digest.
    digests: Vec<Enabled>,
    /// Per account, the handles of its slots' use counters, registered on
    /// first use: building the counter's key and labels on every call cost
    /// more than the rest of the count (and the metrics recorder is
    /// installed after the secrets are read).
    uses: Vec<[OnceLock<Counter>; 2]>,
}

/// An enabled secret: its SHA-256, the index of its account in `accounts`,
/// its slot, and its public id (worked out once, not on every match).
#[derive(Clone)]
struct Enabled {
    sha256: [u8; 32],
    account: u32,
    slot: Slot,
    credential_id: String,
}

/// Where a secret stands in its variable: `current,previous` (the rotation
/// recipe puts the new secret first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The first secret of the variable.
    Current,
    /// The second one.
    Previous,
}

impl Slot {
    /// The slot's name in listings.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Slot::Current => "current",
            Slot::Previous => "previous",
        }
    }
}

/// A configured service secret as listings show it: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListedSecret {
    /// Public id of the secret (`svc_…`).
    pub credential_id: String,
    /// The service's e-mail, `<name>@system.local`.
    pub email: String,
    /// The service's name, e.g. `scheduler`.
    pub name: String,
    /// Where it stands in its variable.
    pub slot: Slot,
    /// When it was last presented (to the minute, by any replica), where
    /// known: filled by the listing, not by the configuration.
    pub last_used_at: Option<i64>,
}

impl std::fmt::Debug for ServiceSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSecrets")
            .field("accounts", &self.accounts)
            .field("secrets", &self.digests.len())
            .finish()
    }
}

impl ServiceSecrets {
    /// Reads every `TESSERA_SERVICE_TOKEN_<NAME>` variable of the process.
    pub(crate) fn from_env() -> Self {
        Self::from_vars(
            std::env::vars_os().filter_map(|(key, value)| {
                Some((key.into_string().ok()?, value.into_string().ok()?))
            }),
        )
    }

    /// Builds the set from `(variable, value)` pairs; other variables are
    /// ignored. Disabled entries are logged by variable name, never value.
    pub(crate) fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut secrets = Self::default();
        let mut vars: Vec<_> = vars
            .into_iter()
            .filter(|(key, _)| key.starts_with(ENV_PREFIX) && key.len() > ENV_PREFIX.len())
            .collect();
        vars.sort();
        for (variable, value) in vars {
            secrets.add(&variable, &value);
        }
        secrets
    }

    fn add(&mut self, variable: &str, value: &str) {
        let parts: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect();
        if parts.is_empty() {
            tracing::info!(
                variable,
                "service secret empty; this service path is disabled"
            );
            return;
        }
        if parts.len() > MAX_SECRETS_PER_NAME {
            tracing::warn!(
                variable,
                "more than two comma-separated service secrets; this service path is disabled"
            );
            return;
        }
        let Ok(index) = u32::try_from(self.accounts.len()) else {
            tracing::warn!(
                variable,
                "too many service names; this service path is disabled"
            );
            return;
        };
        let mut accepted = 0;
        for (position, part) in parts.iter().enumerate() {
            if part.chars().count() < MIN_SECRET_LEN {
                tracing::warn!(
                    variable,
                    position = position + 1,
                    "service secret shorter than 32 characters; that secret is disabled"
                );
                continue;
            }
            let slot = if position == 0 {
                Slot::Current
            } else {
                Slot::Previous
            };
            let sha256: [u8; 32] = Sha256::digest(part.as_bytes()).into();
            self.digests.push(Enabled {
                credential_id: token::credential_id_from_digest(TokenKind::Service.tag(), &sha256),
                sha256,
                account: index,
                slot,
            });
            accepted += 1;
        }
        if accepted > 0 {
            self.accounts
                .push(ServiceAccount::new(&variable[ENV_PREFIX.len()..]));
            self.uses.push(Default::default());
        }
    }

    /// The services with at least one enabled secret.
    pub(crate) fn accounts(&self) -> &[ServiceAccount] {
        &self.accounts
    }

    /// Every enabled secret, by public id, name and slot.
    pub(crate) fn listed(&self) -> Vec<ListedSecret> {
        let listed = self.digests.iter().filter_map(|digest| {
            let account = self.accounts.get(digest.account as usize)?;
            Some(ListedSecret {
                credential_id: digest.credential_id.clone(),
                email: account.email.clone(),
                name: account.name.clone(),
                slot: digest.slot,
                last_used_at: None,
            })
        });
        listed.collect()
    }

    /// The service whose secret equals `presented`, if any, with the public
    /// id of the secret. Every digest is compared, whatever matches.
    pub(crate) fn find(&self, presented: &str) -> Option<ServiceMatch<'_>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = Choice::from(0);
        let mut matched = 0u32;
        for (position, candidate) in (0u32..).zip(&self.digests) {
            let equal = digest.ct_eq(&candidate.sha256);
            matched.conditional_assign(&position, equal);
            found |= equal;
        }
        if !bool::from(found) {
            return None;
        }
        let Enabled {
            account,
            slot,
            credential_id,
            ..
        } = self.digests.get(matched as usize)?;
        Some(ServiceMatch {
            account: self.accounts.get(*account as usize)?,
            credential_id,
            slot: *slot,
            uses: self.uses.get(*account as usize)?.get(*slot as usize)?,
        })
    }
}

/// A presented secret that matched a configured service.
#[derive(Debug)]
pub(crate) struct ServiceMatch<'a> {
    /// The service.
    pub account: &'a ServiceAccount,
    /// Public id of the secret presented (`svc_…`).
    pub credential_id: &'a str,
    /// Where that secret stands in its variable.
    pub slot: Slot,
    uses: &'a OnceLock<Counter>,
}

impl ServiceMatch<'_> {
    /// Counts one use of the secret in `tessera_service_secret_uses_total`,
    /// per service and slot (names are configuration: a bounded label set).
    pub(crate) fn count_use(&self) {
        let counter = self.uses.get_or_init(|| {
            let (name, slot) = (self.account.name.clone(), self.slot.as_str());
            ::metrics::counter!("tessera_service_secret_uses_total", "name" => name, "slot" => slot)
        });
        counter.increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "0123456789abcdef0123456789abcdef";
    const NEXT: &str = "fedcba9876543210fedcba9876543210";

    fn secrets(pairs: &[(&str, &str)]) -> ServiceSecrets {
        ServiceSecrets::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn matches_trimmed_secret_to_its_service() {
        let s = secrets(&[("TESSERA_SERVICE_TOKEN_SCHEDULER", &format!("  {GOOD}\n"))]);
        let account = s.find(GOOD).map(|m| m.account.email.clone());
        assert_eq!(account.as_deref(), Some("scheduler@system.local"));
        assert_eq!(s.accounts()[0].display_name, "Scheduler");
        assert!(s.find(NEXT).is_none());
        assert!(s.find("").is_none());
    }

    #[test]
    fn empty_and_short_secrets_are_disabled() {
        let s = secrets(&[
            ("TESSERA_SERVICE_TOKEN_EMPTY", "   "),
            ("TESSERA_SERVICE_TOKEN_SHORT", "todo"),
        ]);
        assert!(s.accounts().is_empty());
        assert!(s.find("todo").is_none());
        assert!(s.find("").is_none());
    }

    #[test]
    fn two_secrets_rotate_and_a_short_one_is_dropped() {
        let s = secrets(&[(
            "TESSERA_SERVICE_TOKEN_DATA_SYNC",
            &format!("{GOOD}, {NEXT}"),
        )]);
        assert_eq!(
            s.find(GOOD).map(|m| m.account.name.as_str()),
            Some("data_sync")
        );
        assert_eq!(
            s.find(NEXT).map(|m| m.account.display_name.as_str()),
            Some("Data Sync")
        );
        let s = secrets(&[("TESSERA_SERVICE_TOKEN_X", &format!("{GOOD},short"))]);
        assert!(s.find(GOOD).is_some());
        assert!(s.find("short").is_none());
    }

    #[test]
    fn three_secrets_disable_the_name() {
        let s = secrets(&[("TESSERA_SERVICE_TOKEN_X", &format!("{GOOD},{NEXT},{GOOD}x"))]);
        assert!(s.find(GOOD).is_none());
    }

    #[test]
    fn each_secret_resolves_to_its_own_service() {
        let s = secrets(&[
            ("TESSERA_SERVICE_TOKEN_A", GOOD),
            ("TESSERA_SERVICE_TOKEN_B", NEXT),
            ("OTHER_VARIABLE", "0123456789abcdef0123456789abcdefXX"),
        ]);
        assert_eq!(s.find(GOOD).map(|m| m.account.name.as_str()), Some("a"));
        assert_eq!(s.find(NEXT).map(|m| m.account.name.as_str()), Some("b"));
        assert!(!format!("{s:?}").contains(GOOD));
    }
}
