//! The record every issued credential has: what it is, whose, who made it,
//! when it expires, when it was last used, whether it was revoked.

use async_trait::async_trait;

use super::Result;

/// What a stored credential is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// A user access token (`tsr_usr_`).
    UserAccess,
    /// A workspace registration token (`tsr_wsr_`).
    WorkspaceRegistration,
    /// A workspace auth token (`tsr_wsa_`).
    WorkspaceAuth,
    /// A one-shot invite of a new user (`tsr_inv_`); revoked once redeemed.
    Invite,
    /// A server process's internal credential (`tsr_int_`); its row is in
    /// `internal_credentials`, never in `credentials`.
    Internal,
    /// A configured service secret: in the configuration only, never stored.
    ServiceSecret,
}

impl CredentialKind {
    /// Every kind.
    pub const ALL: [CredentialKind; 6] = [
        CredentialKind::UserAccess,
        CredentialKind::WorkspaceRegistration,
        CredentialKind::WorkspaceAuth,
        CredentialKind::Invite,
        CredentialKind::Internal,
        CredentialKind::ServiceSecret,
    ];

    /// The kinds whose records are in `credentials`.
    pub const STORED: [CredentialKind; 4] = [
        CredentialKind::UserAccess,
        CredentialKind::WorkspaceRegistration,
        CredentialKind::WorkspaceAuth,
        CredentialKind::Invite,
    ];

    /// The value of `credentials.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::UserAccess => "user_access",
            CredentialKind::WorkspaceRegistration => "workspace_registration",
            CredentialKind::WorkspaceAuth => "workspace_auth",
            CredentialKind::Invite => "invite",
            CredentialKind::Internal => "internal",
            CredentialKind::ServiceSecret => "service_secret",
        }
    }

    /// The kind stored as `value`, if it is one.
    pub fn from_stored(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }
}

/// A credential's record. Holds its hash, never the credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRecord {
    /// Public id: the token's kind tag and 16 hex digits of its hash.
    pub id: String,
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// What it is.
    pub kind: CredentialKind,
    /// The user id or workspace id it authenticates.
    pub subject: String,
    /// A name its owner chose; empty when none.
    pub name: String,
    /// When it was issued.
    pub created_at: i64,
    /// Who caused it to be issued (an e-mail or subject); empty when unknown.
    pub created_by: String,
    /// When it stops being accepted; `None`: never.
    pub expires_at: Option<i64>,
    /// When it was last presented successfully, to the minute.
    pub last_used_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

impl CredentialRecord {
    /// The part of the record that says whether it is accepted.
    pub fn state(&self) -> CredentialState {
        CredentialState {
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// Why a stored credential is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// It was revoked.
    Revoked,
    /// Its lifetime is over.
    Expired,
}

/// The part of a credential's record a lookup needs to judge it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredentialState {
    /// When it stops being accepted; `None`: never.
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

impl CredentialState {
    /// Whether the credential is accepted at `now`: `Ok`, or why not.
    pub fn standing(&self, now: i64) -> Result<(), Unusable> {
        if self.revoked_at.is_some() {
            return Err(Unusable::Revoked);
        }
        match self.expires_at {
            Some(expires_at) if expires_at <= now => Err(Unusable::Expired),
            _ => Ok(()),
        }
    }
}

/// What redeeming an invite did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redemption {
    /// The invite is spent and the user's access token stored.
    Redeemed(super::UserRecord),
    /// No live invite has the hash (never issued, redeemed, revoked or
    /// expired), or another redemption won the race.
    Spent,
    /// Its inviter is no longer an enabled member of `Admin`.
    InviterNotAdmin,
    /// The invited user was disabled.
    UserDisabled,
}

/// What revoking one credential did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// Its record, revoked now or before (the first time stays).
    Revoked(CredentialRecord),
    /// No credential has that id.
    Unknown,
    /// Nothing was done: no enabled admin would have a live access token.
    WouldLeaveNoAdmin,
}

/// What revoking everything of a subject did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectRevoked {
    /// No user, workspace or credential has that subject.
    Unknown,
    /// This many credentials were revoked (a user was disabled if asked).
    Revoked(u64),
    /// Disabling was asked for a subject that is not a human user (a
    /// workspace, a service user); nothing was done.
    NotAUser,
    /// Nothing was done: no enabled admin would have a live access token.
    WouldLeaveNoAdmin,
}

/// Which credentials a listing returns, and from where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialQuery {
    /// Only this subject's; `None`: everybody's.
    pub subject: Option<String>,
    /// Only of this kind; `None`: every kind.
    pub kind: Option<CredentialKind>,
    /// Revoked ones too.
    pub include_revoked: bool,
    /// Expired ones too (judged at `now`).
    pub include_expired: bool,
    /// The time expiry is judged at.
    pub now: i64,
    /// Only those after this `(created_at, id)`, in that order.
    pub after: Option<(i64, String)>,
    /// At most this many.
    pub limit: u64,
}

/// The database operations on the records of issued credentials.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// Stores the record of a newly issued credential.
    async fn insert_credential(&self, credential: &CredentialRecord) -> Result<()>;

    /// The credential with this public id.
    async fn credential(&self, id: &str) -> Result<Option<CredentialRecord>>;

    /// The credential whose hash this is.
    async fn credential_by_hash(&self, hash: &str) -> Result<Option<CredentialRecord>>;

    /// The credentials `query` selects, ordered by `(created_at, id)`.
    async fn list_credentials(&self, query: &CredentialQuery) -> Result<Vec<CredentialRecord>>;

    /// Marks credential `id` revoked at `now` unless it was already (the
    /// first time stays), and returns its record — unless, with
    /// `keep_admins_of`, no enabled member of that group would have a live
    /// access token left. A revoked workspace auth token is also cleared
    /// from its workspace, so that the next registration issues a fresh one.
    async fn revoke_credential(
        &self,
        id: &str,
        now: i64,
        keep_admins_of: Option<&str>,
    ) -> Result<Revocation>;

    /// The last recorded use of each of the configured service secrets
    /// `ids` (public ids, `svc_…`), where one was recorded.
    async fn service_secret_last_used(&self, ids: &[String]) -> Result<Vec<(String, i64)>>;

    /// Sets the `last_used_at` of each credential `(id, at)` names to `at`,
    /// unless it holds that time or a later one already (a late flush, or
    /// another replica's, never takes it back); one statement for any
    /// number of credentials. Service secrets (`svc_…`), which have no
    /// record, get theirs in a table of their own. Returns the rows changed.
    async fn record_last_used(&self, uses: &[(String, i64)]) -> Result<u64>;

    /// Deletes at most `limit` records of credentials revoked or expired
    /// before `cutoff`, never one of a token its workspace still holds;
    /// returns how many.
    async fn delete_credentials_ended_before(&self, cutoff: i64, limit: u64) -> Result<u64>;

    /// How many credentials of each kind are not revoked and expire after
    /// `now` and no later than `until` (kinds with none are left out).
    async fn count_expiring_credentials(
        &self,
        now: i64,
        until: i64,
    ) -> Result<Vec<(CredentialKind, u64)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_wins_over_expired_and_expiry_is_exclusive() {
        let state = |revoked_at, expires_at| CredentialState {
            expires_at,
            revoked_at,
        };
        assert_eq!(state(None, None).standing(10), Ok(()));
        assert_eq!(state(None, Some(11)).standing(10), Ok(()));
        assert_eq!(state(None, Some(10)).standing(10), Err(Unusable::Expired));
        assert_eq!(state(Some(1), Some(5)).standing(10), Err(Unusable::Revoked));
        for kind in CredentialKind::ALL {
            assert_eq!(CredentialKind::from_stored(kind.as_str()), Some(kind));
        }
        assert_eq!(CredentialKind::from_stored("service"), None);
    }
}
