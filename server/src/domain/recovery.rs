//! What an operator with local access to the database can do when no admin
//! token works: mint an access token for an existing human, list and
//! revoke credentials, enable a disabled user. Audited as the operator.

use std::sync::Arc;
use std::time::Duration;

use tessera_client::Secret;

use super::audit::{Auditor, Event, OK};
use super::credentials::{self, AccessTokenPolicy};
use super::error::{Error, Result};
use crate::store::{
    CredentialKind, CredentialQuery, CredentialRecord, Revocation, Store, UserKind,
};

/// Actor recorded in the audit log for operator commands.
pub(crate) const OPERATOR: &str = "operator-cli";

/// Records per listing query; the listing reads them all.
const PAGE: u64 = 1_000;

/// The operator commands' domain.
pub(crate) struct Recovery {
    store: Arc<dyn Store>,
    audit: Auditor,
    access_tokens: AccessTokenPolicy,
}

impl Recovery {
    pub(crate) fn new(store: Arc<dyn Store>, access_tokens: AccessTokenPolicy) -> Self {
        Self {
            audit: Auditor::new(store.clone()),
            store,
            access_tokens,
        }
    }

    /// A new access token named `name` for the enabled human `email`,
    /// lasting `ttl` (default: the configured default lifetime).
    pub(crate) async fn create_access_token(
        &self,
        email: &str,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<(Secret, CredentialRecord)> {
        let user = self
            .store
            .user_by_email(email.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("a user with e-mail {}", email.trim())))?;
        if user.kind != UserKind::Human {
            return Err(Error::FailedPrecondition(
                "a service user never holds an access token".into(),
            ));
        }
        if user.disabled_at.is_some() {
            return Err(Error::FailedPrecondition(
                "the user is disabled: `tessera users enable` first".into(),
            ));
        }
        let now = self.store.now_ms();
        let expires_at = self.access_tokens.expiry("ttl", now, ttl)?;
        let kind = CredentialKind::UserAccess;
        let mut issued = credentials::issue(kind, &user.id, OPERATOR, now, Some(expires_at))?;
        issued.record.name = name.trim().to_owned();
        if !self
            .store
            .insert_user_credential(&issued.record, None)
            .await?
        {
            return Err(Error::FailedPrecondition(
                "the user was disabled meanwhile".into(),
            ));
        }
        self.audit_ok("access_token.create", &issued.record.id)
            .await;
        Ok((issued.secret, issued.record))
    }

    /// Every credential of `subject` (everybody's for `None`), oldest first.
    pub(crate) async fn list(
        &self,
        subject: Option<String>,
        include_revoked: bool,
        include_expired: bool,
    ) -> Result<Vec<CredentialRecord>> {
        let mut query = CredentialQuery {
            subject,
            include_revoked,
            include_expired,
            now: self.store.now_ms(),
            limit: PAGE,
            ..CredentialQuery::default()
        };
        let mut all = Vec::new();
        loop {
            let page = self.store.list_credentials(&query).await?;
            let full = page.len() as u64 == PAGE;
            query.after = page.last().map(|last| (last.created_at, last.id.clone()));
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Revokes credential `id`. Unlike RevokeCredential, it may take the
    /// last admin's last token: the operator is the recovery path.
    pub(crate) async fn revoke(&self, id: &str) -> Result<CredentialRecord> {
        let now = self.store.now_ms();
        let revoked = match self.store.revoke_credential(id, now, None).await? {
            Revocation::Revoked(record) => record,
            _ => return Err(Error::NotFound(format!("credential {id}"))),
        };
        self.audit_ok("credential.revoke", id).await;
        Ok(revoked)
    }

    /// Enables the user `email` again; false when it was not disabled.
    pub(crate) async fn enable_user(&self, email: &str) -> Result<bool> {
        let user = self
            .store
            .user_by_email(email.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("a user with e-mail {}", email.trim())))?;
        let enabled = self.store.enable_user(&user.id).await?;
        if enabled {
            self.audit_ok("user.enable", &format!("user:{}", user.id))
                .await;
        }
        Ok(enabled)
    }

    async fn audit_ok(&self, action: &'static str, resource: &str) {
        let event = Event {
            action,
            resource,
            outcome: OK,
        };
        self.audit.as_actor(OPERATOR, "", None, event).await;
    }
}
