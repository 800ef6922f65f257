//! More users than the first admin: an admin invites them (a one-shot
//! invite, redeemed once for the user's first access token), and takes
//! everything of a user or workspace back at once, optionally disabling
//! the user.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::audit::{self, Auditor, Event, OK, RefusalAudit};
use super::credentials::{self, AccessTokenPolicy, would_leave_no_admin};
use super::error::{Error, Result};
use super::pasted::PastedSecrets;
use super::principal::{ADMIN_GROUP, Caller, Principal, PrincipalKind};
use super::validate;
use crate::store::{CredentialKind, NewUser, Redemption, Store, SubjectRevoked, UserKind};

/// Lifetime of an invite when the inviter asks for none: 7 days.
const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Longest lifetime of an invite: 30 days.
const MAX_INVITE_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Longest group name, and most groups per invite.
const MAX_GROUP_LEN: usize = 64;
const MAX_GROUPS: usize = 32;

/// What InviteUser asks for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Invitation {
    /// The new user's e-mail.
    pub email: String,
    /// Its display name; empty: the e-mail's local part.
    pub display_name: String,
    /// Groups it joins.
    pub groups: Vec<String>,
    /// Lifetime of the invite in seconds; 0: the default.
    pub ttl_seconds: u32,
}

/// A created user and its invite, returned once.
#[derive(Debug)]
pub(crate) struct Invited {
    /// The user, named by the invite's public id.
    pub user: Principal,
    /// The invite (`tsr_inv_…`).
    pub invite: Secret,
    /// When the invite expires.
    pub expires_at: i64,
}

/// One AcceptInvite call.
pub(crate) struct InviteRedemption<'a> {
    /// The caller's address, for the audit entry.
    pub peer: Option<SocketAddr>,
    /// The invite presented.
    pub presented: &'a str,
    /// Name of the access token to create.
    pub token_name: &'a str,
    /// Told of a refusal as it happens; false when the refusal is to be
    /// counted, not audited (see [`RefusalAudit`]).
    pub audit_refusal: RefusalAudit<'a>,
}

/// InviteUser, AcceptInvite, RevokeSubject.
pub(crate) struct Users {
    store: Arc<dyn Store>,
    audit: Auditor,
    access_tokens: AccessTokenPolicy,
    /// Secrets pasted where a subject belongs.
    pasted: PastedSecrets,
}

impl Users {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        access_tokens: AccessTokenPolicy,
        pasted: PastedSecrets,
    ) -> Self {
        Self {
            audit: Auditor::new(store.clone()),
            store,
            access_tokens,
            pasted,
        }
    }

    /// InviteUser: an admin user creates a user and its invite. A service
    /// never may: the invite becomes a user credential.
    pub(crate) async fn invite(&self, caller: &Caller, request: &Invitation) -> Result<Invited> {
        let inviter = &caller.principal;
        if inviter.kind != PrincipalKind::User || !inviter.is_admin() {
            return Err(Error::PermissionDenied(
                "only an admin user invites: a service never causes a user credential to exist"
                    .into(),
            ));
        }
        let email = validate::human_email("email", &request.email)?.to_lowercase();
        validate::display_name("display_name", &request.display_name)?;
        let groups = groups(&request.groups)?;
        let now = self.store.now_ms();
        let asked = credentials::asked_seconds(request.ttl_seconds);
        let (default, max) = (DEFAULT_INVITE_TTL, MAX_INVITE_TTL);
        let expires_at = credentials::expiry("ttl_seconds", now, asked, default, max)?;
        let name = request.display_name.trim();
        let user = NewUser {
            id: token::random_id()?,
            display_name: if name.is_empty() {
                local_part(&email)
            } else {
                name
            }
            .to_owned(),
            email,
            kind: UserKind::Human,
            created_at: now,
        };
        let kind = CredentialKind::Invite;
        let invite = credentials::issue(kind, &user.id, inviter.actor(), now, Some(expires_at))?;
        let group_names: Vec<&str> = groups.iter().map(String::as_str).collect();
        if !self
            .store
            .invite_user(&user, &group_names, &invite.record)
            .await?
        {
            return Err(Error::AlreadyExists(format!(
                "a user with e-mail {}",
                user.email
            )));
        }
        let event = Event {
            action: "user.invite",
            resource: &format!("user:{}", user.id),
            outcome: OK,
        };
        self.audit.by(caller, event).await;
        let record = crate::store::UserRecord {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            kind: UserKind::Human,
            groups,
            disabled_at: None,
        };
        Ok(Invited {
            user: Principal::user_by(record, invite.record.id),
            invite: invite.secret,
            expires_at,
        })
    }

    /// AcceptInvite: redeems an invite once, for the user and its first
    /// access token; audited either way (a refusal only if the redemption
    /// says so, and counted otherwise).
    pub(crate) async fn accept(
        &self,
        redemption: InviteRedemption<'_>,
    ) -> Result<(Principal, Secret)> {
        let result = self
            .redeem(redemption.presented, redemption.token_name)
            .await;
        let credential_id = token::credential_id_of(redemption.presented).unwrap_or_default();
        let (actor, resource) = match &result {
            Ok((user, _)) => (user.email.clone(), format!("user:{}", user.subject)),
            Err(_) => (String::new(), String::new()),
        };
        let event = Event {
            action: "invite.accept",
            resource: &resource,
            outcome: audit::outcome(&result),
        };
        let peer = redemption.peer;
        match &result {
            Ok(_) => {
                self.audit
                    .as_actor(&actor, &credential_id, peer, event)
                    .await
            }
            Err(err) if (redemption.audit_refusal)(err) => {
                self.audit.failed_auth(&credential_id, peer, event).await;
            }
            Err(_) => ::metrics::counter!("tessera_auth_failures_unaudited_total").increment(1),
        }
        result
    }

    async fn redeem(&self, presented: &str, token_name: &str) -> Result<(Principal, Secret)> {
        if token::parse(presented) != Ok(TokenKind::Invite) {
            return Err(Error::Unauthenticated("malformed invite"));
        }
        validate::free_text("token_name", token_name, credentials::MAX_NAME_LEN)?;
        let hash = token::sha256_hex(presented);
        let invite = self.store.credential_by_hash(&hash).await?;
        let invite = invite
            .filter(|invite| invite.kind == CredentialKind::Invite)
            .ok_or(Error::Unauthenticated("unknown invite"))?;
        let now = self.store.now_ms();
        if invite.state().standing(now).is_err() {
            return Err(Error::Unauthenticated("spent or expired invite"));
        }
        let expires_at = Some(self.access_tokens.default_expiry(now));
        let kind = CredentialKind::UserAccess;
        let subject = &invite.subject;
        let mut token = credentials::issue(kind, subject, subject, now, expires_at)?;
        token.record.name = token_name.trim().to_owned();
        let redeemed = self
            .store
            .redeem_invite(&hash, now, &token.record, ADMIN_GROUP);
        match redeemed.await? {
            Redemption::Redeemed(user) => {
                Ok((Principal::user_by(user, token.record.id), token.secret))
            }
            Redemption::Spent => Err(Error::Unauthenticated("spent or expired invite")),
            Redemption::InviterNotAdmin => Err(Error::FailedPrecondition(
                "the inviter is no longer an enabled member of Admin".into(),
            )),
            Redemption::UserDisabled => Err(Error::FailedPrecondition(
                "the invited user is disabled".into(),
            )),
        }
    }

    /// RevokeSubject: every credential of a user or workspace (and the
    /// user's unredeemed invites), refused at once; with `disable`, the
    /// user is disabled too. Never leaves no enabled admin able to log in.
    pub(crate) async fn revoke_subject(
        &self,
        caller: &Caller,
        subject: &str,
        disable: bool,
    ) -> Result<u64> {
        let result = self.revoke_all(caller, subject, disable).await;
        let event = Event {
            action: if disable {
                "subject.disable"
            } else {
                "subject.revoke"
            },
            resource: &self.pasted.shown(subject),
            outcome: audit::outcome(&result),
        };
        self.audit.by(caller, event).await;
        result
    }

    async fn revoke_all(&self, caller: &Caller, subject: &str, disable: bool) -> Result<u64> {
        caller.require_admin()?;
        validate::free_text("subject", subject, credentials::MAX_NAME_LEN)?;
        self.pasted.refuse("subject", subject)?;
        if subject.is_empty() {
            return Err(Error::invalid("subject", "must name a user or workspace"));
        }
        let now = self.store.now_ms();
        let revoked = self
            .store
            .revoke_subject(subject, now, disable, ADMIN_GROUP);
        match revoked.await? {
            SubjectRevoked::Revoked(count) => Ok(count),
            SubjectRevoked::Unknown => Err(Error::NotFound(format!("subject {subject}"))),
            SubjectRevoked::NotAUser => Err(Error::invalid(
                "disable",
                "only a human user is disabled (a service: change its configuration)",
            )),
            SubjectRevoked::WouldLeaveNoAdmin => Err(would_leave_no_admin()),
        }
    }
}

/// The invite's groups: each printable and short, without repeats.
fn groups(requested: &[String]) -> Result<Vec<String>> {
    if requested.len() > MAX_GROUPS {
        return Err(Error::invalid("groups", format!("more than {MAX_GROUPS}")));
    }
    let mut groups = BTreeSet::new();
    for group in requested {
        validate::free_text("groups", group, MAX_GROUP_LEN)?;
        let group = group.trim();
        if group.is_empty() {
            return Err(Error::invalid("groups", "a group name is empty"));
        }
        groups.insert(group.to_owned());
    }
    Ok(groups.into_iter().collect())
}

fn local_part(email: &str) -> &str {
    email.split('@').next().unwrap_or(email)
}
