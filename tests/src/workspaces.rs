//! The workspace-lifecycle RPCs as the tests call them.

use tessera_client::Client;
use tessera_client::pb;
use tessera_client::tonic::Status;

use crate::TestServer;

/// RegisterWorkspace as `bearer`, confirming the next inbound secret `held`
/// (empty: nothing to confirm).
pub async fn register_holding(
    server: &TestServer,
    bearer: &str,
    workspace_id: &str,
    held: &str,
) -> Result<pb::RegisterWorkspaceResponse, Status> {
    let mut runtime = server.client(Some(bearer)).await;
    let request = pb::RegisterWorkspaceRequest {
        workspace_id: workspace_id.to_owned(),
        held_inbound_secret_id: held.to_owned(),
        ..Default::default()
    };
    Ok(runtime.register_workspace(request).await?.into_inner())
}

/// RotateInboundSecret.
pub async fn rotate_inbound_secret(
    admin: &mut Client,
    workspace_id: &str,
    force: bool,
) -> Result<pb::RotateInboundSecretResponse, Status> {
    let request = pb::RotateInboundSecretRequest {
        workspace_id: workspace_id.to_owned(),
        force,
    };
    Ok(admin.rotate_inbound_secret(request).await?.into_inner())
}

/// GetInboundSecret.
pub async fn get_inbound_secret(
    admin: &mut Client,
    workspace_id: &str,
) -> Result<pb::GetInboundSecretResponse, Status> {
    let request = pb::GetInboundSecretRequest {
        workspace_id: workspace_id.to_owned(),
    };
    Ok(admin.get_inbound_secret(request).await?.into_inner())
}

/// The current inbound secret of `workspace_id`, which must be readable.
pub async fn platform_secret(admin: &mut Client, workspace_id: &str) -> String {
    get_inbound_secret(admin, workspace_id)
        .await
        .expect("GetInboundSecret")
        .platform_inbound_secret
        .expect("a secret")
}

/// ReissueRegistrationToken.
pub async fn reissue_registration_token(
    admin: &mut Client,
    workspace_id: &str,
    revoke_auth_tokens: bool,
) -> Result<pb::ReissueRegistrationTokenResponse, Status> {
    let request = pb::ReissueRegistrationTokenRequest {
        workspace_id: workspace_id.to_owned(),
        revoke_auth_tokens,
    };
    Ok(admin
        .reissue_registration_token(request)
        .await?
        .into_inner())
}

/// DeleteWorkspace.
pub async fn delete_workspace(
    admin: &mut Client,
    workspace_id: &str,
) -> Result<pb::DeleteWorkspaceResponse, Status> {
    let request = pb::DeleteWorkspaceRequest {
        workspace_id: workspace_id.to_owned(),
    };
    Ok(admin.delete_workspace(request).await?.into_inner())
}
