//! The first-admin install token: minted once when nobody can log in yet,
//! traded once for the first administrator and its access token.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::principal::ADMIN_GROUP;
use crate::store::{InstallOutcome, NewAdmin, Store, UserRecord};
use crate::validate;

/// Longest e-mail accepted (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;
/// Domain reserved for synthetic service users.
const SERVICE_DOMAIN: &str = "@system.local";

/// Where the install token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallState {
    /// None minted yet.
    NotIssued,
    /// Minted, not used.
    Pending,
    /// Used to create the first admin.
    Consumed,
}

/// State and times of the install token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstallStatus {
    /// The state.
    pub state: InstallState,
    /// When the token on file was minted.
    pub issued_at: Option<i64>,
    /// When it was consumed.
    pub consumed_at: Option<i64>,
}

/// The first admin and its fresh access token.
#[derive(Debug)]
pub struct FirstAdmin {
    /// The admin user.
    pub user: UserRecord,
    /// A user access token (`tsr_usr_…`), returned once.
    pub token: Secret,
}

/// Install-token operations over a store.
#[derive(Clone)]
pub struct Install {
    store: Arc<dyn Store>,
}

impl Install {
    /// Operations on `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The current state.
    pub async fn status(&self) -> Result<InstallStatus> {
        let record = self.store.install_token().await?;
        Ok(match record {
            None => InstallStatus {
                state: InstallState::NotIssued,
                issued_at: None,
                consumed_at: None,
            },
            Some(record) => InstallStatus {
                state: match record.consumed_at {
                    Some(_) => InstallState::Consumed,
                    None => InstallState::Pending,
                },
                issued_at: Some(record.issued_at),
                consumed_at: record.consumed_at,
            },
        })
    }

    /// Mints a token when no human user exists and none is on file (pending
    /// or consumed); of racing callers, exactly one gets `Some`.
    pub async fn mint_if_needed(&self) -> Result<Option<Secret>> {
        if self.store.any_human_user().await? || self.store.install_token().await?.is_some() {
            return Ok(None);
        }
        let token = token::try_generate(TokenKind::Install)?;
        let filed = self
            .store
            .insert_install_token(&token::sha256_hex(token.expose()), now_ms())
            .await?;
        Ok(filed.then_some(token))
    }

    /// Mints a fresh token, replacing a pending one. Once a human user
    /// exists no token could ever be used, so none is minted.
    pub async fn regenerate(&self) -> Result<Secret> {
        if self.store.any_human_user().await? {
            return Err(first_admin_exists());
        }
        let token = token::try_generate(TokenKind::Install)?;
        let replaced = self
            .store
            .replace_install_token(&token::sha256_hex(token.expose()), now_ms())
            .await?;
        if !replaced {
            return Err(first_admin_exists());
        }
        Ok(token)
    }

    /// Trades the pending token for the first admin (member of `Admin`)
    /// and its access token, in one transaction.
    pub async fn consume(&self, presented: &str, email: &str, name: &str) -> Result<FirstAdmin> {
        // SPEC: once any human user exists this fails with
        // FAILED_PRECONDITION, whatever was presented.
        if self.store.any_human_user().await? {
            return Err(first_admin_exists());
        }
        if token::parse(presented) != Ok(TokenKind::Install) {
            return Err(Error::Unauthenticated("malformed install token"));
        }
        let (email, name) = validate_admin(email, name)?;
        let hash = token::sha256_hex(presented);
        let on_file = self.store.install_token().await?;
        let pending = on_file.filter(|record| record.consumed_at.is_none());
        let matches =
            pending.is_some_and(|record| bool::from(record.hash.as_bytes().ct_eq(hash.as_bytes())));
        if !matches {
            return Err(Error::Unauthenticated("wrong install token"));
        }
        let admin_token = token::try_generate(TokenKind::UserAccess)?;
        let admin = NewAdmin {
            id: token::random_id()?,
            email,
            display_name: name,
            token_hash: token::sha256_hex(admin_token.expose()),
        };
        match self
            .store
            .consume_install_token(&hash, now_ms(), &admin, &[ADMIN_GROUP])
            .await?
        {
            InstallOutcome::Created(user) => Ok(FirstAdmin {
                user,
                token: admin_token,
            }),
            InstallOutcome::NotPending => Err(Error::Unauthenticated("wrong install token")),
            InstallOutcome::HumanExists => Err(first_admin_exists()),
        }
    }
}

fn first_admin_exists() -> Error {
    Error::FailedPrecondition("the first administrator exists already".into())
}

/// Checks the admin's e-mail and name; an empty name becomes the e-mail's
/// local part.
fn validate_admin(email: &str, name: &str) -> Result<(String, String)> {
    let email = email.trim();
    let valid_shape = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !valid_shape {
        return Err(Error::invalid("admin_email", "not an e-mail address"));
    }
    if email.to_ascii_lowercase().ends_with(SERVICE_DOMAIN) {
        return Err(Error::invalid(
            "admin_email",
            "the system.local domain is reserved for services",
        ));
    }
    let name = name.trim();
    validate::display_name("admin_name", name)?;
    let name = if name.is_empty() {
        email.split('@').next().unwrap_or(email)
    } else {
        name
    };
    Ok((email.to_owned(), name.to_owned()))
}

/// Prints [`banner`] on standard output. A closed stdout is logged, never a
/// panic; the token is then lost and must be regenerated.
pub fn print_banner(token: &Secret) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{}", banner(token)).and_then(|()| stdout.flush()) {
        tracing::error!(error = %err, "could not print the install token banner; run `tessera install-token regenerate`");
    }
}

/// The banner printed on standard output when a token is minted: the only
/// place its raw value ever appears.
pub fn banner(token: &Secret) -> String {
    let rule = "=".repeat(72);
    format!(
        "{rule}\nTessera first boot: create the first administrator with ConsumeInstallToken.\nThis token is shown once; `tessera install-token regenerate` replaces it.\nINSTALL TOKEN: {}\n{rule}",
        token.expose()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_email_is_validated() {
        for bad in [
            "",
            "a",
            "a@b",
            "@b.c",
            "a b@c.d",
            "a@.c",
            "a@c.",
            "svc@system.local",
            "x@SYSTEM.local",
        ] {
            assert!(validate_admin(bad, "n").is_err(), "{bad:?} accepted");
        }
        let (email, name) = validate_admin(" ada@example.com ", "").expect("valid");
        assert_eq!((email.as_str(), name.as_str()), ("ada@example.com", "ada"));
        assert!(validate_admin("ada@example.com", &"n".repeat(300)).is_err());
    }

    #[test]
    fn banner_has_a_greppable_line() {
        let token = Secret::new("tsr_ins_abc");
        let banner = banner(&token);
        assert_eq!(
            banner
                .lines()
                .filter(|l| *l == "INSTALL TOKEN: tsr_ins_abc")
                .count(),
            1
        );
    }
}
