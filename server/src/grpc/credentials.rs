//! `tessera.v1.CredentialService` over [`Tessera`].

use std::net::SocketAddr;
use std::sync::Arc;

use tessera_client::pb::{self, credential_service_server::CredentialService};
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::{lifecycle, workspaces};
use crate::auth::RefusalCharge;
use crate::domain::{Caller, Redemption, Tessera, TicketRequest};

/// The gRPC face of [`Tessera`].
pub(crate) struct CredentialsApi {
    app: Arc<Tessera>,
}

impl CredentialsApi {
    /// Serves `app`.
    pub(crate) fn new(app: Arc<Tessera>) -> Self {
        Self { app }
    }
}

/// The caller the auth layer attached, taken out of the request (a handler
/// needs it once). Its absence is a wiring bug.
fn caller<T>(request: &mut Request<T>) -> Result<Caller, Status> {
    request.extensions_mut().remove::<Caller>().ok_or_else(|| {
        tracing::error!("request reached a handler without an authenticated caller");
        Status::internal("internal error")
    })
}

type Reply<T> = Result<Response<T>, Status>;

/// Of an anonymous redemption (its credential is in the message): the
/// caller's address, and the charge the auth layer makes of a refusal,
/// which says whether to audit it (every refusal, without the layer).
pub(super) fn redeemer<T>(request: &Request<T>) -> (Option<SocketAddr>, Option<RefusalCharge>) {
    let charge = request.extensions().get::<RefusalCharge>().cloned();
    (request.remote_addr(), charge)
}

/// Whether a redemption's refusal `err` is audited (see [`redeemer`]).
pub(super) fn audit_refusal(charge: Option<&RefusalCharge>, err: &crate::domain::Error) -> bool {
    charge.is_none_or(|charge| charge.audit_refusal(err))
}

#[tonic::async_trait]
impl CredentialService for CredentialsApi {
    async fn verify_bearer(
        &self,
        mut request: Request<pb::VerifyBearerRequest>,
    ) -> Reply<pb::VerifyBearerResponse> {
        let caller = caller(&mut request)?;
        let principal = self
            .app
            .bearers
            .verify(&caller, &request.get_ref().token)
            .await?;
        Ok(Response::new(pb::VerifyBearerResponse {
            principal: Some(principal.into()),
        }))
    }

    async fn mint_ticket(
        &self,
        mut request: Request<pb::MintTicketRequest>,
    ) -> Reply<pb::MintTicketResponse> {
        let caller = caller(&mut request)?;
        let pb::MintTicketRequest {
            user_id,
            provider,
            purpose,
            ttl_seconds,
        } = request.into_inner();
        let ticket_request = TicketRequest {
            user_id,
            provider,
            purpose,
            ttl_seconds,
        };
        let minted = self.app.tickets.mint(&caller, &ticket_request).await?;
        Ok(Response::new(pb::MintTicketResponse {
            ticket: minted.ticket.expose().to_owned(),
            expires_at: Some(timestamp(minted.expires_at)),
        }))
    }

    async fn consume_ticket(
        &self,
        mut request: Request<pb::ConsumeTicketRequest>,
    ) -> Reply<pb::ConsumeTicketResponse> {
        let caller = caller(&mut request)?;
        let body = request.get_ref();
        let identity = self
            .app
            .tickets
            .consume(&caller, &body.ticket, &body.purpose)
            .await?;
        Ok(Response::new(pb::ConsumeTicketResponse {
            identity: Some(identity.into()),
        }))
    }

    async fn get_internal_credential(
        &self,
        mut request: Request<pb::GetInternalCredentialRequest>,
    ) -> Reply<pb::GetInternalCredentialResponse> {
        let caller = caller(&mut request)?;
        let credential = self.app.internal.get(&caller).await?;
        Ok(Response::new(pb::GetInternalCredentialResponse {
            credential: credential.expose().to_owned(),
        }))
    }

    async fn issue_install_token(
        &self,
        mut request: Request<pb::IssueInstallTokenRequest>,
    ) -> Reply<pb::IssueInstallTokenResponse> {
        let caller = caller(&mut request)?;
        let force = request.get_ref().force;
        let (minted, status) = self.app.install.issue(&caller, force).await?;
        Ok(Response::new(pb::IssueInstallTokenResponse {
            install_token: minted.map(|token| token.expose().to_owned()),
            state: pb::InstallTokenState::from(status.state).into(),
            issued_at: status.issued_at.map(timestamp),
        }))
    }

    async fn get_install_token_status(
        &self,
        _request: Request<pb::GetInstallTokenStatusRequest>,
    ) -> Reply<pb::GetInstallTokenStatusResponse> {
        let status = self.app.install.status().await?;
        Ok(Response::new(pb::GetInstallTokenStatusResponse {
            state: pb::InstallTokenState::from(status.state).into(),
            issued_at: status.issued_at.map(timestamp),
            consumed_at: status.consumed_at.map(timestamp),
        }))
    }

    async fn consume_install_token(
        &self,
        request: Request<pb::ConsumeInstallTokenRequest>,
    ) -> Reply<pb::ConsumeInstallTokenResponse> {
        let (peer, charge) = redeemer(&request);
        let audit = |err: &crate::domain::Error| audit_refusal(charge.as_ref(), err);
        let body = request.get_ref();
        let redemption = Redemption {
            peer,
            presented: &body.install_token,
            email: &body.admin_email,
            name: &body.admin_name,
            audit_refusal: &audit,
        };
        let first = self.app.install.consume(redemption).await?;
        Ok(Response::new(pb::ConsumeInstallTokenResponse {
            admin: Some(first.admin.into()),
            admin_token: first.token.expose().to_owned(),
        }))
    }

    async fn provision_workspace(
        &self,
        mut request: Request<pb::ProvisionWorkspaceRequest>,
    ) -> Reply<pb::ProvisionWorkspaceResponse> {
        workspaces::provision(&self.app, caller(&mut request)?, request).await
    }

    async fn register_workspace(
        &self,
        mut request: Request<pb::RegisterWorkspaceRequest>,
    ) -> Reply<pb::RegisterWorkspaceResponse> {
        workspaces::register(&self.app, caller(&mut request)?, request).await
    }

    async fn get_inbound_secret(
        &self,
        mut request: Request<pb::GetInboundSecretRequest>,
    ) -> Reply<pb::GetInboundSecretResponse> {
        workspaces::inbound_secret(&self.app, caller(&mut request)?, request).await
    }

    async fn create_access_token(
        &self,
        mut request: Request<pb::CreateAccessTokenRequest>,
    ) -> Reply<pb::CreateAccessTokenResponse> {
        lifecycle::create_access_token(&self.app, caller(&mut request)?, request).await
    }

    async fn list_credentials(
        &self,
        mut request: Request<pb::ListCredentialsRequest>,
    ) -> Reply<pb::ListCredentialsResponse> {
        lifecycle::list_credentials(&self.app, caller(&mut request)?, request).await
    }

    async fn revoke_credential(
        &self,
        mut request: Request<pb::RevokeCredentialRequest>,
    ) -> Reply<pb::RevokeCredentialResponse> {
        lifecycle::revoke_credential(&self.app, caller(&mut request)?, request).await
    }

    async fn revoke_subject(
        &self,
        mut request: Request<pb::RevokeSubjectRequest>,
    ) -> Reply<pb::RevokeSubjectResponse> {
        lifecycle::revoke_subject(&self.app, caller(&mut request)?, request).await
    }

    async fn invite_user(
        &self,
        mut request: Request<pb::InviteUserRequest>,
    ) -> Reply<pb::InviteUserResponse> {
        lifecycle::invite_user(&self.app, caller(&mut request)?, request).await
    }

    async fn accept_invite(
        &self,
        request: Request<pb::AcceptInviteRequest>,
    ) -> Reply<pb::AcceptInviteResponse> {
        lifecycle::accept_invite(&self.app, request).await
    }

    async fn list_audit_events(
        &self,
        mut request: Request<pb::ListAuditEventsRequest>,
    ) -> Reply<pb::ListAuditEventsResponse> {
        lifecycle::list_audit_events(&self.app, caller(&mut request)?, request).await
    }

    async fn rotate_inbound_secret(
        &self,
        mut request: Request<pb::RotateInboundSecretRequest>,
    ) -> Reply<pb::RotateInboundSecretResponse> {
        workspaces::rotate_inbound_secret(&self.app, caller(&mut request)?, request).await
    }

    async fn reissue_registration_token(
        &self,
        mut request: Request<pb::ReissueRegistrationTokenRequest>,
    ) -> Reply<pb::ReissueRegistrationTokenResponse> {
        workspaces::reissue_registration_token(&self.app, caller(&mut request)?, request).await
    }

    async fn delete_workspace(
        &self,
        mut request: Request<pb::DeleteWorkspaceRequest>,
    ) -> Reply<pb::DeleteWorkspaceResponse> {
        workspaces::delete(&self.app, caller(&mut request)?, request).await
    }
}
