//! ConsumeInstallToken: the pending install token traded, once, for the
//! first administrator and its access token.

use std::net::SocketAddr;
use subtle::ConstantTimeEq;
use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::{INSTALL, Install};
use crate::domain::audit::{Event, OK, RefusalAudit};
use crate::domain::credentials;
use crate::domain::error::{Error, Result};
use crate::domain::principal::{ADMIN_GROUP, Principal};
use crate::domain::validate;
use crate::metrics;
use crate::store::{CredentialKind, InstallOutcome, NewAdmin};

/// The first admin and its fresh access token.
#[derive(Debug)]
pub(crate) struct FirstAdmin {
    /// The admin, as its access token authenticates it.
    pub(crate) admin: Principal,
    /// A user access token (`tsr_usr_…`), returned once.
    pub(crate) token: Secret,
}

impl Install {
    /// ConsumeInstallToken: creates the first admin; audited either way
    /// (a refusal only if the redemption says so, and counted otherwise).
    pub(crate) async fn consume(&self, redemption: Redemption<'_>) -> Result<FirstAdmin> {
        let Redemption {
            peer,
            presented,
            email,
            name,
            audit_refusal,
        } = redemption;
        let result = self.create_first_admin(presented, email, name).await;
        let event = if result.is_ok() {
            "consumed"
        } else {
            "refused"
        };
        metrics::event(INSTALL, event);
        let outcome = match &result {
            Ok(_) => OK,
            Err(Error::Unauthenticated(reason)) => reason,
            Err(Error::FailedPrecondition(_)) => "first admin exists",
            Err(Error::InvalidArgument { .. }) => "invalid argument",
            Err(_) => "error",
        };
        let credential_id = token::credential_id_of(presented).unwrap_or_default();
        let resource = match &result {
            Ok(first) => format!("user:{}", first.admin.subject),
            Err(_) => String::new(),
        };
        let event = Event {
            action: "install_token.consume",
            resource: &resource,
            outcome,
        };
        match &result {
            Ok(first) => {
                let actor = &first.admin.email;
                self.audit
                    .as_actor(actor, &credential_id, peer, event)
                    .await;
            }
            Err(err) if audit_refusal(err) => {
                self.audit.failed_auth(&credential_id, peer, event).await;
            }
            Err(_) => ::metrics::counter!("tessera_auth_failures_unaudited_total").increment(1),
        }
        result
    }

    /// Trades the pending token for the first admin (member of `Admin`)
    /// and its access token, in one transaction.
    async fn create_first_admin(
        &self,
        presented: &str,
        email: &str,
        name: &str,
    ) -> Result<FirstAdmin> {
        // Once any human user exists this fails as a precondition, whatever
        // was presented.
        if self.store.any_human_user().await? {
            return Err(first_admin_exists());
        }
        if token::parse(presented) != Ok(TokenKind::Install) {
            return Err(Error::Unauthenticated("malformed install token"));
        }
        let email = validate::human_email("admin_email", email)?;
        validate::display_name("admin_name", name)?;
        let name = name.trim();
        let hash = token::sha256_hex(presented);
        let on_file = self.store.install_token().await?;
        // Consumed since the check above: the first admin exists now (a
        // token is consumed only together with making it).
        if on_file
            .as_ref()
            .is_some_and(|record| record.consumed_at.is_some())
        {
            return Err(first_admin_exists());
        }
        let matches =
            on_file.is_some_and(|record| bool::from(record.hash.as_bytes().ct_eq(hash.as_bytes())));
        if !matches {
            return Err(Error::Unauthenticated("wrong install token"));
        }
        let (id, now) = (token::random_id()?, self.store.now_ms());
        let expires_at = Some(self.access_tokens.default_expiry(now));
        let token = credentials::issue(CredentialKind::UserAccess, &id, email, now, expires_at)?;
        let admin = NewAdmin {
            id,
            email: email.to_owned(),
            display_name: display_name_or_local_part(name, email).to_owned(),
            token: token.record,
        };
        let outcome = self
            .store
            .consume_install_token(&hash, now, &admin, &[ADMIN_GROUP]);
        match outcome.await? {
            InstallOutcome::Created(user) => Ok(FirstAdmin {
                admin: Principal::user(user, token.secret.expose()),
                token: token.secret,
            }),
            InstallOutcome::NotPending => Err(Error::Unauthenticated("wrong install token")),
            InstallOutcome::HumanExists => Err(first_admin_exists()),
        }
    }
}

/// The refusal once any human user exists.
pub(super) fn first_admin_exists() -> Error {
    Error::FailedPrecondition("the first administrator exists already".into())
}

/// `name`, or the local part of `email` when `name` is empty.
fn display_name_or_local_part<'a>(name: &'a str, email: &'a str) -> &'a str {
    if name.is_empty() {
        email.split('@').next().unwrap_or(email)
    } else {
        name
    }
}

/// One ConsumeInstallToken call.
pub(crate) struct Redemption<'a> {
    /// The caller's address, for the audit entry.
    pub peer: Option<SocketAddr>,
    /// The install token presented.
    pub presented: &'a str,
    /// The first admin's e-mail.
    pub email: &'a str,
    /// The first admin's display name.
    pub name: &'a str,
    /// Told of a refusal as it happens; false when the refusal is to be
    /// counted, not audited (see [`RefusalAudit`]).
    pub audit_refusal: RefusalAudit<'a>,
}

#[cfg(test)]
mod tests {
    use super::display_name_or_local_part;

    #[test]
    fn an_empty_name_becomes_the_local_part() {
        assert_eq!(display_name_or_local_part("", "ada@example.com"), "ada");
        assert_eq!(display_name_or_local_part("Ada", "ada@example.com"), "Ada");
    }
}
