//! Drawing a new credential and its record, and the lifetimes of user
//! access tokens.

use std::time::Duration;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::error::{Error, Result};
use crate::store::{CredentialKind, CredentialRecord};

/// Default lifetime of a user access token: 90 days.
pub(crate) const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(90 * 86_400);
/// Longest lifetime a user may give its access token: 366 days.
pub(crate) const MAX_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(366 * 86_400);

/// Lifetimes of user access tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AccessTokenPolicy {
    /// When the caller asks for none (and for tokens made by redemptions).
    pub default_ttl: Duration,
    /// The longest a caller may ask for.
    pub max_ttl: Duration,
}

impl Default for AccessTokenPolicy {
    fn default() -> Self {
        Self {
            default_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            max_ttl: MAX_ACCESS_TOKEN_TTL,
        }
    }
}

impl AccessTokenPolicy {
    /// When a token issued at `now` with the default lifetime expires.
    pub(crate) fn default_expiry(&self, now: i64) -> i64 {
        now.saturating_add(millis(self.default_ttl))
    }

    /// When a token issued at `now` lasting `asked` (`None`: the default)
    /// expires; `INVALID_ARGUMENT` on `field` beyond the maximum.
    pub(crate) fn expiry(
        &self,
        field: &'static str,
        now: i64,
        asked: Option<Duration>,
    ) -> Result<i64> {
        expiry(field, now, asked, self.default_ttl, self.max_ttl)
    }
}

/// A lifetime a request asked for in seconds: `None` for 0 (the default).
pub(crate) fn asked_seconds(seconds: u32) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)))
}

/// When a credential issued at `now` lasting `asked` (`None`: `default`)
/// expires; `INVALID_ARGUMENT` on `field` when it asked for more than `max`.
pub(crate) fn expiry(
    field: &'static str,
    now: i64,
    asked: Option<Duration>,
    default: Duration,
    max: Duration,
) -> Result<i64> {
    let lifetime = asked.unwrap_or(default);
    if lifetime > max {
        let max = max.as_secs();
        return Err(Error::invalid(field, format!("above {max} s")));
    }
    Ok(now.saturating_add(millis(lifetime)))
}

/// A credential of `kind` for `subject`, freshly drawn, and its record.
pub(crate) struct Issued {
    /// The credential itself, returned once.
    pub secret: Secret,
    /// Its record, to store.
    pub record: CredentialRecord,
}

/// Draws a fresh credential of `kind` for `subject` and makes its record.
pub(crate) fn issue(
    kind: CredentialKind,
    subject: &str,
    created_by: &str,
    now: i64,
    expires_at: Option<i64>,
) -> Result<Issued> {
    let secret = token::try_generate(token_kind(kind))?;
    let record = CredentialRecord {
        id: token::credential_id(token_kind(kind).tag(), secret.expose()),
        hash: token::sha256_hex(secret.expose()),
        kind,
        subject: subject.to_owned(),
        name: String::new(),
        created_at: now,
        created_by: created_by.to_owned(),
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    Ok(Issued { secret, record })
}

fn token_kind(kind: CredentialKind) -> TokenKind {
    match kind {
        CredentialKind::UserAccess => TokenKind::UserAccess,
        CredentialKind::WorkspaceRegistration => TokenKind::WorkspaceRegistration,
        CredentialKind::WorkspaceAuth => TokenKind::WorkspaceAuth,
        CredentialKind::Invite => TokenKind::Invite,
        CredentialKind::Internal => TokenKind::Internal,
        CredentialKind::ServiceSecret => TokenKind::Service,
    }
}

/// `duration` in milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
