//! The values the store exchanges about workspaces and their secrets.

use async_trait::async_trait;
use tessera_client::Secret;

use super::{CredentialRecord, CredentialState, Result};

/// The database operations on workspaces and their secrets.
#[async_trait]
pub trait WorkspaceStore: Send + Sync + 'static {
    /// Stores a new workspace and the record of its registration token;
    /// false when its id is taken.
    async fn insert_workspace(
        &self,
        workspace: &WorkspaceRecord,
        registration: &CredentialRecord,
    ) -> Result<bool>;

    /// The workspace with this id.
    async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRecord>>;

    /// The workspace whose registration token has this hash, without its
    /// secrets, and the token's standing.
    async fn workspace_by_registration(
        &self,
        hash: &str,
    ) -> Result<Option<(WorkspaceRecord, CredentialState)>>;

    /// The workspace whose current auth token has this hash, without its
    /// secrets, and the token's standing.
    async fn workspace_by_auth(
        &self,
        hash: &str,
    ) -> Result<Option<(WorkspaceRecord, CredentialState)>>;

    /// Records a registration at `now` by the credential `bearer` (a
    /// public id), applies `auth` and, when the runtime confirms the next
    /// inbound secret, promotes it. `None` (nothing written) when `bearer`
    /// was revoked or expired meanwhile, or the workspace is gone.
    async fn record_registration(
        &self,
        id: &str,
        now: i64,
        bearer: &str,
        auth: AuthTokenChange<'_>,
        confirmation: Option<Confirmation<'_>>,
    ) -> Result<Option<Registered>>;

    /// Sets `next` (whose public id is `next_id`) as the next inbound
    /// secret of workspace `id`, replacing one not yet confirmed. While a
    /// previous secret is accepted after `now`, only with `force`, which
    /// drops it.
    async fn start_inbound_rotation(
        &self,
        id: &str,
        next: &Secret,
        next_id: &str,
        now: i64,
        force: bool,
    ) -> Result<RotationStart>;

    /// Drops the previous inbound secret of at most `limit` workspaces whose
    /// grace ended at or before `now`; returns the ids of those this call
    /// dropped (another replica's sweep never reports the same one).
    async fn expire_previous_inbound_secrets(&self, now: i64, limit: u64) -> Result<Vec<String>>;

    /// Replaces the registration token of workspace `id` with `new` (the
    /// old one is revoked at `now`) and, with `revoke_auth_tokens`, revokes
    /// its auth tokens too. Returns how many credentials were revoked;
    /// `None` when no workspace has that id.
    async fn reissue_registration_token(
        &self,
        id: &str,
        new: &CredentialRecord,
        revoke_auth_tokens: bool,
        now: i64,
    ) -> Result<Option<u64>>;

    /// Revokes at `now` every credential of workspace `id` and deletes it
    /// with its secrets. Returns how many credentials were revoked; `None`
    /// when no workspace has that id.
    async fn delete_workspace(&self, id: &str, now: i64) -> Result<Option<u64>>;
}

/// A provisioned workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkspaceRecord {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The current secret the platform presents to it; `None` for legacy
    /// workspaces.
    pub inbound_secret: Option<Secret>,
    /// A rotation of the inbound secret in flight, if any.
    pub rotation: InboundRotation,
    /// Hex SHA-256 of its registration token.
    pub registration_hash: String,
    /// Hex SHA-256 of its current auth token, once registered.
    pub auth_hash: Option<String>,
    /// When it was provisioned.
    pub created_at: i64,
    /// When it first registered.
    pub registered_at: Option<i64>,
    /// When it last registered.
    pub last_registered_at: Option<i64>,
}

/// The inbound secrets of a workspace besides its current one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboundRotation {
    /// The secret the platform switches to once the runtime confirms it
    /// holds it, with its public id and when the rotation started.
    pub next: Option<NextInboundSecret>,
    /// The secret the last confirmed rotation replaced, and until when
    /// (exclusive) the runtime accepts it. Kept past that time until the
    /// reaper clears it: readers compare the deadline with their clock.
    pub previous: Option<(Secret, i64)>,
}

/// A next inbound secret, waiting for the runtime's confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextInboundSecret {
    /// The secret.
    pub secret: Secret,
    /// Its public id, which the runtime sends back to confirm.
    pub id: String,
    /// When the rotation started.
    pub started_at: i64,
}

/// How a registration treats the workspace's auth token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthTokenChange<'a> {
    /// Leave it as it is.
    Keep,
    /// Set this token only if no auth token is set yet (first registration).
    SetIfNone(&'a CredentialRecord),
    /// Replace it with `new` (rotation) if it is still `current` (`None`:
    /// no token); the old token stops verifying at once and its record is
    /// marked revoked.
    Replace {
        /// The new auth token.
        new: &'a CredentialRecord,
        /// Hash the rotation expects to replace.
        current: Option<&'a str>,
    },
}

/// A runtime's confirmation that it holds the next inbound secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confirmation<'a> {
    /// The public id the runtime holds; promotes only if it is the next
    /// secret's.
    pub held_id: &'a str,
    /// Until when the secret it replaces stays accepted.
    pub previous_valid_until: i64,
}

/// What a recorded registration wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// True when the auth token was written.
    pub auth_token_written: bool,
    /// True when a confirmation promoted the next inbound secret.
    pub promoted: bool,
    /// The workspace as the registration left it.
    pub workspace: WorkspaceRecord,
}

/// What starting a rotation of the inbound secret did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationStart {
    /// The next secret is set; `replaced_unconfirmed` when it replaced one
    /// the runtime had not confirmed, `ended_grace` when a forced rotation
    /// dropped a previous secret still in its grace.
    Started {
        /// An unconfirmed next secret was replaced.
        replaced_unconfirmed: bool,
        /// A previous secret still accepted was dropped.
        ended_grace: bool,
    },
    /// Nothing changed: a previous secret is accepted until this time.
    InGrace(i64),
    /// No workspace has that id.
    Unknown,
}
