//! `tessera.v1.CredentialService` over [`Tessera`].

use std::sync::Arc;

use tessera_client::pb::{self, credential_service_server::CredentialService};
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use crate::app::Tessera;
use crate::error::Error;
use crate::principal::Caller;
use crate::tickets::TicketRequest;

/// The gRPC face of [`Tessera`].
pub struct CredentialsApi {
    app: Arc<Tessera>,
}

impl CredentialsApi {
    /// Serves `app`.
    pub fn new(app: Arc<Tessera>) -> Self {
        Self { app }
    }
}

/// The caller the auth layer attached. Its absence is a wiring bug.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("request reached a handler without an authenticated caller");
            Status::internal("internal error")
        })
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl CredentialService for CredentialsApi {
    async fn verify_bearer(
        &self,
        request: Request<pb::VerifyBearerRequest>,
    ) -> Reply<pb::VerifyBearerResponse> {
        let caller = caller(&request)?;
        let principal = self
            .app
            .verify_bearer(&caller, &request.get_ref().token)
            .await?;
        Ok(Response::new(pb::VerifyBearerResponse {
            principal: Some(principal.into()),
        }))
    }

    async fn mint_ticket(
        &self,
        request: Request<pb::MintTicketRequest>,
    ) -> Reply<pb::MintTicketResponse> {
        let caller = caller(&request)?;
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
        let minted = self.app.mint_ticket(&caller, &ticket_request).await?;
        Ok(Response::new(pb::MintTicketResponse {
            ticket: minted.ticket.expose().to_owned(),
            expires_at: Some(timestamp(minted.expires_at)),
        }))
    }

    async fn consume_ticket(
        &self,
        request: Request<pb::ConsumeTicketRequest>,
    ) -> Reply<pb::ConsumeTicketResponse> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let identity = self
            .app
            .consume_ticket(&caller, &body.ticket, &body.purpose)
            .await?;
        Ok(Response::new(pb::ConsumeTicketResponse {
            identity: Some(identity.into()),
        }))
    }

    async fn get_internal_credential(
        &self,
        request: Request<pb::GetInternalCredentialRequest>,
    ) -> Reply<pb::GetInternalCredentialResponse> {
        let caller = caller(&request)?;
        let credential = self.app.internal_credential(&caller).await?;
        Ok(Response::new(pb::GetInternalCredentialResponse {
            credential: credential.expose().to_owned(),
        }))
    }

    async fn issue_install_token(
        &self,
        _request: Request<pb::IssueInstallTokenRequest>,
    ) -> Reply<pb::IssueInstallTokenResponse> {
        Err(Error::Unimplemented("IssueInstallToken").into())
    }

    async fn get_install_token_status(
        &self,
        _request: Request<pb::GetInstallTokenStatusRequest>,
    ) -> Reply<pb::GetInstallTokenStatusResponse> {
        Err(Error::Unimplemented("GetInstallTokenStatus").into())
    }

    async fn consume_install_token(
        &self,
        _request: Request<pb::ConsumeInstallTokenRequest>,
    ) -> Reply<pb::ConsumeInstallTokenResponse> {
        Err(Error::Unimplemented("ConsumeInstallToken").into())
    }

    async fn provision_workspace(
        &self,
        _request: Request<pb::ProvisionWorkspaceRequest>,
    ) -> Reply<pb::ProvisionWorkspaceResponse> {
        Err(Error::Unimplemented("ProvisionWorkspace").into())
    }

    async fn register_workspace(
        &self,
        _request: Request<pb::RegisterWorkspaceRequest>,
    ) -> Reply<pb::RegisterWorkspaceResponse> {
        Err(Error::Unimplemented("RegisterWorkspace").into())
    }

    async fn get_inbound_secret(
        &self,
        _request: Request<pb::GetInboundSecretRequest>,
    ) -> Reply<pb::GetInboundSecretResponse> {
        Err(Error::Unimplemented("GetInboundSecret").into())
    }
}
