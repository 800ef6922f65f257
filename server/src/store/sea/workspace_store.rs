//! [`WorkspaceStore`] for [`SeaStore`]: the workspace queries
//! (`workspaces.rs`, `workspace_changes.rs`), with the retrievable secrets
//! sealed on their way in and opened on their way out (`sealed.rs`) —
//! except from the lookups that authenticate, which drop them.

use async_trait::async_trait;
use tessera_client::Secret;

use super::sealed::{open_workspace, seal_secret, seal_workspace};
use super::{SeaStore, workspace_changes, workspaces};
use crate::store::{
    AuthTokenChange, Confirmation, CredentialRecord, CredentialState, Registered, Result,
    RotationStart, WorkspaceRecord, WorkspaceStore,
};

/// A workspace found by one of its tokens, without its secrets: the
/// caller authenticates, and needs none of them. (Nor does any caller pay
/// for opening them, or fail on one that does not open.)
fn without_secrets(
    found: Option<(WorkspaceRecord, CredentialState)>,
) -> Option<(WorkspaceRecord, CredentialState)> {
    found.map(|(record, state)| {
        let record = WorkspaceRecord {
            inbound_secret: None,
            rotation: Default::default(),
            ..record
        };
        (record, state)
    })
}

#[async_trait]
impl WorkspaceStore for SeaStore {
    async fn insert_workspace(
        &self,
        workspace: &WorkspaceRecord,
        registration: &CredentialRecord,
    ) -> Result<bool> {
        let sealed = seal_workspace(&self.keys, workspace)?;
        self.gated(workspaces::insert(&self.db, &sealed, registration))
            .await
    }

    async fn workspace(&self, id: &str) -> Result<Option<WorkspaceRecord>> {
        let found = self.gated(workspaces::by_id(&self.db, id)).await?;
        found
            .map(|found| open_workspace(&self.keys, found))
            .transpose()
    }

    async fn workspace_by_registration(
        &self,
        hash: &str,
    ) -> Result<Option<(WorkspaceRecord, CredentialState)>> {
        let found = self.gated(workspaces::by_registration(&self.db, hash));
        Ok(without_secrets(found.await?))
    }

    async fn workspace_by_auth(
        &self,
        hash: &str,
    ) -> Result<Option<(WorkspaceRecord, CredentialState)>> {
        Ok(without_secrets(self.lookups.workspace(hash).await?))
    }

    async fn record_registration(
        &self,
        id: &str,
        now: i64,
        bearer: &str,
        auth: AuthTokenChange<'_>,
        confirmation: Option<Confirmation<'_>>,
    ) -> Result<Option<Registered>> {
        let record =
            workspace_changes::record_registration(&self.db, id, now, bearer, auth, confirmation);
        let Some(registered) = self.gated(record).await? else {
            return Ok(None);
        };
        Ok(Some(Registered {
            workspace: open_workspace(&self.keys, registered.workspace)?,
            ..registered
        }))
    }

    async fn start_inbound_rotation(
        &self,
        id: &str,
        next: &Secret,
        next_id: &str,
        now: i64,
        force: bool,
    ) -> Result<RotationStart> {
        let next = seal_secret(&self.keys, id, next)?;
        let start =
            workspace_changes::start_inbound_rotation(&self.db, id, &next, next_id, now, force);
        self.gated(start).await
    }

    async fn expire_previous_inbound_secrets(&self, now: i64, limit: u64) -> Result<Vec<String>> {
        let expire = workspace_changes::expire_previous_inbound_secrets(&self.db, now, limit);
        self.gated(expire).await
    }

    async fn reissue_registration_token(
        &self,
        id: &str,
        new: &CredentialRecord,
        revoke_auth_tokens: bool,
        now: i64,
    ) -> Result<Option<u64>> {
        let reissue = workspace_changes::reissue_registration_token(
            &self.db,
            id,
            new,
            revoke_auth_tokens,
            now,
        );
        self.gated(reissue).await
    }

    async fn delete_workspace(&self, id: &str, now: i64) -> Result<Option<u64>> {
        self.gated(workspace_changes::delete_workspace(&self.db, id, now))
            .await
    }
}
