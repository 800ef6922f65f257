//! The workspace RPCs, called from `credentials.rs`: decode, call
//! [`crate::domain::Workspaces`], encode.

use tessera_client::pb;
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use crate::domain::{Caller, Tessera};

type Reply<T> = Result<Response<T>, Status>;

/// ProvisionWorkspace.
pub(super) async fn provision(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::ProvisionWorkspaceRequest>,
) -> Reply<pb::ProvisionWorkspaceResponse> {
    let body = request.get_ref();
    let provisioned = app
        .workspaces
        .provision(&caller, &body.workspace_id, &body.name)
        .await?;
    Ok(Response::new(pb::ProvisionWorkspaceResponse {
        workspace_id: provisioned.workspace_id,
        registration_token: provisioned.registration_token.expose().to_owned(),
        platform_inbound_secret: provisioned.inbound_secret.expose().to_owned(),
    }))
}

/// RegisterWorkspace.
pub(super) async fn register(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::RegisterWorkspaceRequest>,
) -> Reply<pb::RegisterWorkspaceResponse> {
    let body = request.get_ref();
    let registration = app
        .workspaces
        .register(&caller, &body.workspace_id, body.reissue_auth_token)
        .await?;
    Ok(Response::new(pb::RegisterWorkspaceResponse {
        auth_token: registration.auth_token.map(|t| t.expose().to_owned()),
        platform_inbound_secret: registration.inbound_secret.map(|s| s.expose().to_owned()),
        registered_at: Some(timestamp(registration.registered_at)),
        ..Default::default()
    }))
}

/// GetInboundSecret.
pub(super) async fn inbound_secret(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::GetInboundSecretRequest>,
) -> Reply<pb::GetInboundSecretResponse> {
    let secret = app
        .workspaces
        .inbound_secret(&caller, &request.get_ref().workspace_id)
        .await?;
    Ok(Response::new(pb::GetInboundSecretResponse {
        platform_inbound_secret: secret.map(|s| s.expose().to_owned()),
        ..Default::default()
    }))
}

/// RotateInboundSecret.
pub(super) async fn rotate_inbound_secret(
    _app: &Tessera,
    _caller: Caller,
    _request: Request<pb::RotateInboundSecretRequest>,
) -> Reply<pb::RotateInboundSecretResponse> {
    Err(Status::unimplemented(
        "RotateInboundSecret is not built yet",
    ))
}

/// ReissueRegistrationToken.
pub(super) async fn reissue_registration_token(
    _app: &Tessera,
    _caller: Caller,
    _request: Request<pb::ReissueRegistrationTokenRequest>,
) -> Reply<pb::ReissueRegistrationTokenResponse> {
    Err(Status::unimplemented(
        "ReissueRegistrationToken is not built yet",
    ))
}

/// DeleteWorkspace.
pub(super) async fn delete(
    _app: &Tessera,
    _caller: Caller,
    _request: Request<pb::DeleteWorkspaceRequest>,
) -> Reply<pb::DeleteWorkspaceResponse> {
    Err(Status::unimplemented("DeleteWorkspace is not built yet"))
}
