//! The workspace RPCs, called from `credentials.rs`: decode, call
//! [`crate::domain::Workspaces`], encode.

use tessera_client::{Secret, pb};
use tonic::{Request, Response, Status};

use super::convert::{count, duration, timestamp};
use crate::domain::{Caller, Registration, Tessera, inbound_id};

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
        registration_token: expose(&provisioned.registration_token),
        platform_inbound_secret: expose(&provisioned.inbound_secret),
    }))
}

/// RegisterWorkspace.
pub(super) async fn register(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::RegisterWorkspaceRequest>,
) -> Reply<pb::RegisterWorkspaceResponse> {
    let body = request.get_ref();
    let registration = app.workspaces.register(
        &caller,
        &body.workspace_id,
        body.reissue_auth_token,
        &body.held_inbound_secret_id,
    );
    let Registration {
        auth_token,
        inbound,
        registered_at,
        ..
    } = registration.await?;
    let (next, next_id) = inbound.next.unzip();
    let (previous, previous_valid_until) = inbound.previous.unzip();
    Ok(Response::new(pb::RegisterWorkspaceResponse {
        auth_token: auth_token.as_ref().map(expose),
        inbound_secret_id: inbound.current.as_ref().map(inbound_id).unwrap_or_default(),
        platform_inbound_secret: inbound.current.as_ref().map(expose),
        registered_at: Some(timestamp(registered_at)),
        next_platform_inbound_secret: next.as_ref().map(expose),
        next_inbound_secret_id: next_id.unwrap_or_default(),
        previous_platform_inbound_secret: previous.as_ref().map(expose),
        previous_valid_until: previous_valid_until.map(timestamp),
        register_again_within: inbound.register_again_within_ms.map(duration),
    }))
}

/// GetInboundSecret.
pub(super) async fn inbound_secret(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::GetInboundSecretRequest>,
) -> Reply<pb::GetInboundSecretResponse> {
    let read = app
        .workspaces
        .inbound_secret(&caller, &request.get_ref().workspace_id)
        .await?;
    Ok(Response::new(pb::GetInboundSecretResponse {
        platform_inbound_secret: read.secret.as_ref().map(expose),
        refresh_before: Some(timestamp(read.refresh_before)),
        inbound_secret_id: read.id.unwrap_or_default(),
    }))
}

/// RotateInboundSecret.
pub(super) async fn rotate_inbound_secret(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::RotateInboundSecretRequest>,
) -> Reply<pb::RotateInboundSecretResponse> {
    let body = request.get_ref();
    let started = app
        .workspaces
        .rotate_inbound_secret(&caller, &body.workspace_id, body.force)
        .await?;
    Ok(Response::new(pb::RotateInboundSecretResponse {
        next_inbound_secret_id: started.next_id,
        replaced_unconfirmed: started.replaced_unconfirmed,
    }))
}

/// ReissueRegistrationToken.
pub(super) async fn reissue_registration_token(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::ReissueRegistrationTokenRequest>,
) -> Reply<pb::ReissueRegistrationTokenResponse> {
    let body = request.get_ref();
    let reissued = app
        .workspaces
        .reissue_registration_token(&caller, &body.workspace_id, body.revoke_auth_tokens)
        .await?;
    Ok(Response::new(pb::ReissueRegistrationTokenResponse {
        registration_token: expose(&reissued.registration_token),
        credential: Some(reissued.record.into()),
        revoked: count(reissued.revoked),
    }))
}

/// DeleteWorkspace.
pub(super) async fn delete(
    app: &Tessera,
    caller: Caller,
    request: Request<pb::DeleteWorkspaceRequest>,
) -> Reply<pb::DeleteWorkspaceResponse> {
    let revoked = app
        .workspaces
        .delete(&caller, &request.get_ref().workspace_id)
        .await?;
    Ok(Response::new(pb::DeleteWorkspaceResponse {
        revoked: count(revoked),
    }))
}

fn expose(secret: &Secret) -> String {
    secret.expose().to_owned()
}
