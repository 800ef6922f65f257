//! What an admin does to a workspace after provisioning it: replace its
//! registration token (after a leak), or delete it.

use tessera_client::Secret;

use super::{WORKSPACES, Workspaces, not_found, validate_id};
use crate::domain::audit;
use crate::domain::credentials;
use crate::domain::error::Result;
use crate::domain::principal::Caller;
use crate::metrics;
use crate::store::{CredentialKind, CredentialRecord};

/// What ReissueRegistrationToken hands back.
#[derive(Debug)]
pub(crate) struct Reissued {
    /// The new registration token, shown once.
    pub(crate) registration_token: Secret,
    /// Its record.
    pub(crate) record: CredentialRecord,
    /// How many credentials were revoked.
    pub(crate) revoked: u64,
}

impl Workspaces {
    /// ReissueRegistrationToken: replaces the registration token of
    /// `workspace_id` and, with `revoke_auth_tokens`, revokes its auth
    /// tokens.
    pub(crate) async fn reissue_registration_token(
        &self,
        caller: &Caller,
        workspace_id: &str,
        revoke_auth_tokens: bool,
    ) -> Result<Reissued> {
        let result = self.reissue(caller, workspace_id, revoke_auth_tokens).await;
        let outcome = audit::outcome(&result);
        if result.is_ok() {
            metrics::event(WORKSPACES, "registration_token_reissued");
        }
        let action = "workspace.reissue_registration_token";
        self.audit_by(caller, action, workspace_id, outcome).await;
        result
    }

    async fn reissue(
        &self,
        caller: &Caller,
        workspace_id: &str,
        revoke_auth_tokens: bool,
    ) -> Result<Reissued> {
        caller.require_admin()?;
        validate_id(workspace_id)?;
        let now = self.store.now_ms();
        let kind = CredentialKind::WorkspaceRegistration;
        let actor = caller.principal.actor();
        let new = credentials::issue(kind, workspace_id, actor, now, None)?;
        let reissued = self.store.reissue_registration_token(
            workspace_id,
            &new.record,
            revoke_auth_tokens,
            now,
        );
        let revoked = reissued.await?.ok_or_else(|| not_found(workspace_id))?;
        Ok(Reissued {
            registration_token: new.secret,
            record: new.record,
            revoked,
        })
    }

    /// DeleteWorkspace: revokes every credential of `workspace_id` and
    /// removes it with its secrets; returns how many credentials were
    /// revoked.
    pub(crate) async fn delete(&self, caller: &Caller, workspace_id: &str) -> Result<u64> {
        let result = self.delete_workspace(caller, workspace_id).await;
        let outcome = audit::outcome(&result);
        if result.is_ok() {
            metrics::event(WORKSPACES, "deleted");
        }
        self.audit_by(caller, "workspace.delete", workspace_id, outcome)
            .await;
        result
    }

    async fn delete_workspace(&self, caller: &Caller, workspace_id: &str) -> Result<u64> {
        caller.require_admin()?;
        validate_id(workspace_id)?;
        let now = self.store.now_ms();
        let deleted = self.store.delete_workspace(workspace_id, now);
        deleted.await?.ok_or_else(|| not_found(workspace_id))
    }
}
