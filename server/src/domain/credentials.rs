//! Credential lifecycle: users mint their own access tokens, and anyone
//! lists and revokes its own credentials (members of `Admin`: anybody's).
//! Every issued credential has a record (`store/credentials.rs`); the
//! verifier refuses a revoked or expired one on its next presentation.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_client::Secret;
use tessera_client::token::TokenKind;

use super::audit::{self, Auditor, Event, OK};
use super::error::{Error, Result};
use super::page_token::PageToken;
use super::pasted::PastedSecrets;
use super::principal::{ADMIN_GROUP, Caller, INTERNAL_SUBJECT, PrincipalKind};
use super::validate;
use crate::auth::verify::{ListedSecret, SharedSecrets};
use crate::store::{CredentialKind, CredentialQuery, CredentialRecord, Revocation, Store};

pub(crate) use super::issuing::{AccessTokenPolicy, asked_seconds, expiry, issue};

/// Longest credential name accepted, in bytes.
pub(super) const MAX_NAME_LEN: usize = 128;
/// Credentials per page when the caller asks for no size.
const DEFAULT_PAGE_SIZE: u32 = 100;
/// Most credentials per page.
const MAX_PAGE_SIZE: u32 = 1_000;

/// What ListCredentials asks for.
#[derive(Clone, Debug, Default)]
pub(crate) struct CredentialFilter {
    /// Whose; empty: the caller's own (everybody's for members of `Admin`).
    pub subject: String,
    /// Of which kind; `None`: every kind.
    pub kind: Option<CredentialKind>,
    /// Revoked ones too.
    pub include_revoked: bool,
    /// Expired ones too.
    pub include_expired: bool,
    /// At most this many (0: the default).
    pub page_size: u32,
    /// Where the previous page ended; empty for the first page.
    pub page_token: String,
}

/// One entry of a listing.
#[derive(Clone, Debug)]
pub(crate) enum Listed {
    /// An issued credential's record.
    Stored(CredentialRecord),
    /// A configured service secret, read-only; it sorts first (as if
    /// created at time 0).
    Service(ListedSecret),
}

impl Listed {
    /// Where it stands in a listing: by creation time, then id.
    pub(super) fn key(&self) -> (i64, &str) {
        match self {
            Listed::Stored(record) => (record.created_at, &record.id),
            Listed::Service(secret) => (0, &secret.credential_id),
        }
    }
}

/// One page of credentials.
#[derive(Clone, Debug)]
pub(crate) struct CredentialPage {
    /// The entries, ordered by creation time and id.
    pub credentials: Vec<Listed>,
    /// Where the next page starts; empty when this is the last one.
    pub next_page_token: String,
}

/// CreateAccessToken, ListCredentials, RevokeCredential.
pub(crate) struct Credentials {
    store: Arc<dyn Store>,
    audit: Auditor,
    policy: AccessTokenPolicy,
    /// The configured service secrets, for listings (as they stand after
    /// the last reload).
    services: Arc<SharedSecrets>,
    /// Secrets pasted where an id belongs.
    pasted: PastedSecrets,
}

impl Credentials {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        policy: AccessTokenPolicy,
        services: Arc<SharedSecrets>,
    ) -> Self {
        Self {
            audit: Auditor::new(store.clone()),
            store,
            policy,
            pasted: PastedSecrets::new(services.clone()),
            services,
        }
    }

    /// CreateAccessToken: a user mints a named access token for itself.
    pub(crate) async fn create_access_token(
        &self,
        caller: &Caller,
        name: &str,
        ttl_seconds: u32,
    ) -> Result<(Secret, CredentialRecord)> {
        let principal = &caller.principal;
        if principal.kind != PrincipalKind::User {
            return Err(Error::PermissionDenied(
                "only a user mints access tokens, for itself".into(),
            ));
        }
        validate::free_text("name", name, MAX_NAME_LEN)?;
        let now = self.store.now_ms();
        let expires_at = self
            .policy
            .expiry("ttl_seconds", now, asked_seconds(ttl_seconds))?;
        let kind = CredentialKind::UserAccess;
        let mut issued = issue(
            kind,
            &principal.subject,
            principal.actor(),
            now,
            Some(expires_at),
        )?;
        issued.record.name = name.trim().to_owned();
        let minted_with = Some(principal.credential_id.as_str());
        if !self
            .store
            .insert_user_credential(&issued.record, minted_with)
            .await?
        {
            return Err(Error::Unauthenticated(
                "revoked credential or disabled user",
            ));
        }
        let event = Event {
            action: "access_token.create",
            resource: &issued.record.id,
            outcome: OK,
        };
        self.audit.by(caller, event).await;
        Ok((issued.secret, issued.record))
    }

    /// ListCredentials: metadata only, a page at a time.
    pub(crate) async fn list(
        &self,
        caller: &Caller,
        filter: &CredentialFilter,
    ) -> Result<CredentialPage> {
        let subject = self.subject_visible_to(caller, &filter.subject)?;
        let limit = match filter.page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        let kind = filter.kind.map(CredentialKind::as_str).unwrap_or_default();
        let flags = [filter.include_revoked, filter.include_expired].map(|f| f.to_string());
        let filters = [filter.subject.as_str(), kind, &flags[0], &flags[1]];
        let scope = PageToken::scope("credentials", &caller.principal.subject, &filters);
        let after = PageToken::decode(&filter.page_token, &scope)?;
        let stored = match filter.kind {
            Some(CredentialKind::ServiceSecret) => Vec::new(),
            kind => {
                let query = CredentialQuery {
                    subject: subject.clone(),
                    kind,
                    include_revoked: filter.include_revoked,
                    include_expired: filter.include_expired,
                    now: self.store.now_ms(),
                    after: after.clone(),
                    limit: u64::from(limit) + 1,
                };
                self.store.list_credentials(&query).await?
            }
        };
        let mut credentials: Vec<Listed> = stored.into_iter().map(Listed::Stored).collect();
        let services_too = caller.principal.is_admin()
            && matches!(filter.kind, None | Some(CredentialKind::ServiceSecret));
        if services_too {
            let after = after.as_ref().map(|(at, id)| (*at, id.as_str()));
            let listed = self.services.load().listed();
            let mut services: Vec<_> = listed
                .into_iter()
                .filter(|secret| {
                    subject
                        .as_deref()
                        .is_none_or(|subject| subject == secret.email)
                        && after.is_none_or(|after| (0, secret.credential_id.as_str()) > after)
                })
                .collect();
            let ids: Vec<String> = services.iter().map(|s| s.credential_id.clone()).collect();
            let used: HashMap<String, i64> = self
                .store
                .service_secret_last_used(&ids)
                .await?
                .into_iter()
                .collect();
            for secret in &mut services {
                secret.last_used_at = used.get(&secret.credential_id).copied();
            }
            credentials.extend(services.into_iter().map(Listed::Service));
            credentials.sort_by(|a, b| a.key().cmp(&b.key()));
        }
        let next_page_token = if credentials.len() > limit as usize {
            credentials.truncate(limit as usize);
            credentials
                .last()
                .map(|last| {
                    let (key, id) = last.key();
                    PageToken::encode(&scope, key, id)
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(CredentialPage {
            credentials,
            next_page_token,
        })
    }

    /// RevokeCredential: refused from now on, on every replica (lookups
    /// are never cached). Revoking twice returns the first revocation.
    pub(crate) async fn revoke(&self, caller: &Caller, id: &str) -> Result<CredentialRecord> {
        let result = self.revoke_visible(caller, id).await;
        let outcome = audit::outcome(&result);
        let event = Event {
            action: "credential.revoke",
            resource: &self.pasted.shown(id),
            outcome,
        };
        self.audit.by(caller, event).await;
        result
    }

    async fn revoke_visible(&self, caller: &Caller, id: &str) -> Result<CredentialRecord> {
        validate::free_text("credential_id", id, MAX_NAME_LEN)?;
        self.pasted.refuse("credential_id", id)?;
        let not_found = || Error::NotFound(format!("credential {id}"));
        let admin = caller.principal.is_admin();
        if admin && id.starts_with(&format!("{}_", TokenKind::Service.tag())) {
            return Err(Error::FailedPrecondition(
                "a service secret is revoked by changing its configuration and reloading".into(),
            ));
        }
        if let Some(hex) = id.strip_prefix("int_") {
            return self.revoke_internal(admin, id, hex).await;
        }
        let found = self.store.credential(id).await?.ok_or_else(not_found)?;
        if !admin && found.subject != caller.principal.subject {
            return Err(not_found());
        }
        let now = self.store.now_ms();
        match self
            .store
            .revoke_credential(id, now, Some(ADMIN_GROUP))
            .await?
        {
            Revocation::Revoked(record) => Ok(record),
            Revocation::Unknown => Err(not_found()),
            Revocation::WouldLeaveNoAdmin => Err(would_leave_no_admin()),
        }
    }

    /// Revokes the internal credential `id` (`int_` and `hex`): every
    /// replica, its own process included, refuses it from now on, and its
    /// process mints a replacement on the next GetInternalCredential.
    async fn revoke_internal(&self, admin: bool, id: &str, hex: &str) -> Result<CredentialRecord> {
        let is_id = hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !admin || !is_id {
            return Err(Error::NotFound(format!("credential {id}")));
        }
        let now = self.store.now_ms();
        let row = self.store.revoke_internal_credential(hex, now).await?;
        let row = row.ok_or_else(|| Error::NotFound(format!("credential {id}")))?;
        Ok(CredentialRecord {
            id: id.to_owned(),
            hash: row.hash,
            kind: CredentialKind::Internal,
            subject: INTERNAL_SUBJECT.to_owned(),
            name: row.instance_id,
            created_at: row.created_at,
            created_by: String::new(),
            expires_at: None,
            last_used_at: None,
            revoked_at: row.revoked_at,
        })
    }

    /// The subject a listing may cover: a member of `Admin` any (`None`:
    /// everybody), anyone else only itself.
    fn subject_visible_to(&self, caller: &Caller, asked: &str) -> Result<Option<String>> {
        validate::free_text("subject", asked, MAX_NAME_LEN)?;
        let own = &caller.principal.subject;
        match (caller.principal.is_admin(), asked) {
            (true, "") => Ok(None),
            (true, subject) => Ok(Some(subject.to_owned())),
            (false, "") => Ok(Some(own.clone())),
            (false, subject) if subject == own => Ok(Some(own.clone())),
            (false, _) => Err(Error::PermissionDenied(
                "only members of Admin list others' credentials".into(),
            )),
        }
    }
}

/// The refusal of a revocation that would leave no enabled admin user with
/// a live access token: nobody could then invite users or recover without
/// local database access.
pub(super) fn would_leave_no_admin() -> Error {
    Error::FailedPrecondition("this would leave no enabled admin with a live access token".into())
}
