//! The workspace RPCs of [`Tessera`].

use tessera_client::Secret;

use super::{OK, Tessera, WORKSPACES};
use crate::audit::Event;
use crate::error::{Error, Result};
use crate::metrics;
use crate::principal::Caller;
use crate::workspaces::{Provisioned, Registration};

impl Tessera {
    /// ProvisionWorkspace.
    pub async fn provision_workspace(
        &self,
        caller: &Caller,
        workspace_id: &str,
        name: &str,
    ) -> Result<Provisioned> {
        let provisioned = self.workspaces.provision(workspace_id, name).await?;
        metrics::event(WORKSPACES, "provisioned");
        let resource = workspace_resource(workspace_id);
        let event = Event {
            action: "workspace.provision",
            resource: &resource,
            outcome: OK,
        };
        self.audit.by(caller, event).await;
        Ok(provisioned)
    }

    /// RegisterWorkspace: audited as a registration, and as a rotation
    /// when it replaced the auth token.
    pub async fn register_workspace(
        &self,
        caller: &Caller,
        workspace_id: &str,
        reissue_auth_token: bool,
    ) -> Result<Registration> {
        let result = self
            .workspaces
            .register(&caller.principal, workspace_id, reissue_auth_token)
            .await;
        let resource = workspace_resource(workspace_id);
        let outcome = match &result {
            Ok(_) => OK,
            Err(Error::PermissionDenied(_)) => "permission denied",
            Err(Error::NotFound(_)) => "not found",
            Err(_) => "error",
        };
        if result.is_ok() {
            metrics::event(WORKSPACES, "registered");
        }
        let event = Event {
            action: "workspace.register",
            resource: &resource,
            outcome,
        };
        self.audit.by(caller, event).await;
        if matches!(&result, Ok(registration) if registration.rotated) {
            metrics::event(WORKSPACES, "auth_token_rotated");
            let event = Event {
                action: "workspace.rotate_auth_token",
                resource: &resource,
                outcome,
            };
            self.audit.by(caller, event).await;
        }
        result
    }

    /// GetInboundSecret.
    pub async fn inbound_secret(&self, workspace_id: &str) -> Result<Option<Secret>> {
        self.workspaces.inbound_secret(workspace_id).await
    }
}

/// Audit resource of a workspace; the id is capped, since a refused request
/// may carry any text.
fn workspace_resource(workspace_id: &str) -> String {
    let id: String = workspace_id.chars().take(128).collect();
    format!("workspace:{id}")
}
