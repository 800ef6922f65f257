//! The values the store reads and writes: plain data, no backend types.
//! All times are Unix milliseconds; all secrets are hex SHA-256 digests.

use super::CredentialRecord;

/// Whether a user is a person or a synthetic service identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKind {
    /// Backs a `TESSERA_SERVICE_TOKEN_<NAME>` secret; never counts as a human.
    Service,
    /// A person.
    Human,
}

/// A user and the groups it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Stable random id.
    pub id: String,
    /// Unique e-mail address.
    pub email: String,
    /// Name for display.
    pub display_name: String,
    /// Person or service.
    pub kind: UserKind,
    /// Group names, sorted.
    pub groups: Vec<String>,
    /// When it was disabled: none of its credentials is accepted then.
    pub disabled_at: Option<i64>,
}

/// A user to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    /// Its id, used only if the user does not exist yet.
    pub id: String,
    /// Unique e-mail address.
    pub email: String,
    /// Name for display.
    pub display_name: String,
    /// Person or service.
    pub kind: UserKind,
    /// When it is created.
    pub created_at: i64,
}

/// The internal credential of one server process, kept alive by heartbeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternalCredentialRecord {
    /// Hex SHA-256 of the credential.
    pub hash: String,
    /// Random id of the process that minted it.
    pub instance_id: String,
    /// When it was minted.
    pub created_at: i64,
    /// Last time its process said it is alive.
    pub heartbeat_at: i64,
    /// When it was revoked; its process then mints a replacement.
    pub revoked_at: Option<i64>,
}

/// One audit log entry. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// When it happened.
    pub at: i64,
    /// E-mail or subject of the principal acting; empty when unknown.
    pub actor: String,
    /// What was attempted, e.g. `ticket.mint`.
    pub action: String,
    /// What it was done to, e.g. a ticket's truncated text or a user id.
    pub resource: String,
    /// `ok` or the failure reason.
    pub outcome: String,
    /// Public id of the credential presented; empty when none.
    pub credential_id: String,
    /// Remote address of the caller; empty when unknown.
    pub peer: String,
}

/// An audit entry whose outcome is decided by the write it records: a
/// take's entry is completed from the verdict on the row it found, in the
/// same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditDraft {
    /// When it happened.
    pub at: i64,
    /// E-mail or subject of the principal acting; empty when unknown.
    pub actor: String,
    /// What was attempted, e.g. `ticket.consume`.
    pub action: String,
    /// What it was done to.
    pub resource: String,
    /// Public id of the credential presented; empty when none.
    pub credential_id: String,
    /// Remote address of the caller; empty when unknown.
    pub peer: String,
}

impl AuditDraft {
    /// The entry, with `outcome`.
    pub fn with_outcome(&self, outcome: &str) -> AuditRecord {
        AuditRecord {
            at: self.at,
            actor: self.actor.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            outcome: outcome.to_owned(),
            credential_id: self.credential_id.clone(),
            peer: self.peer.clone(),
        }
    }
}

/// The install token on file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallTokenRecord {
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// When it was minted.
    pub issued_at: i64,
    /// When it created the first admin, if it did.
    pub consumed_at: Option<i64>,
}

/// The first administrator to create with the install token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAdmin {
    /// Its user id.
    pub id: String,
    /// Its e-mail.
    pub email: String,
    /// Its display name.
    pub display_name: String,
    /// Its first user access token (whose subject is `id`).
    pub token: CredentialRecord,
}

/// What [`Store::consume_install_token`](super::Store::consume_install_token) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The token was pending with this hash; the admin now exists.
    Created(UserRecord),
    /// No pending token with this hash (wrong or replaced), and no human.
    NotPending,
    /// A human user exists already (made with this token or otherwise);
    /// nothing was changed.
    HumanExists,
}
