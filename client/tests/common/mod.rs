//! A fake Tessera for the workspace-runtime tests: a real tonic server on
//! 127.0.0.1:0 implementing `RegisterWorkspace` with the server's rules
//! (auth token issued on first registration or re-issue, which rotates it;
//! inbound secret on every call) and UNIMPLEMENTED for everything else.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tessera_client::pb::credential_service_server::{CredentialService, CredentialServiceServer};
use tessera_client::pb::*;
use tessera_client::tonic::transport::Server;
use tessera_client::tonic::transport::server::TcpIncoming;
use tessera_client::tonic::{self, Request, Response, Status};
use tessera_client::workspace::InboundAuthLayer;
use tessera_client::{Client, Secret};

pub const WORKSPACE: &str = "ws-1";
pub const REGISTRATION_TOKEN: &str = "tsr_wsr_registration";
pub const INBOUND_SECRET: &str = "tsr_wsi_inbound";

/// What the fake knows and saw.
#[derive(Debug)]
pub struct State {
    pub registration_token: String,
    /// The workspace's current auth token; earlier ones stop verifying.
    pub auth_token: Option<String>,
    /// `None` models a legacy workspace (NULL column).
    pub inbound_secret: Option<String>,
    pub issued: u32,
    /// (bearer, reissue_auth_token) of every RegisterWorkspace call.
    pub calls: Vec<(Option<String>, bool)>,
}

#[derive(Clone)]
pub struct FakeTessera {
    pub state: Arc<Mutex<State>>,
}

impl FakeTessera {
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                registration_token: REGISTRATION_TOKEN.into(),
                auth_token: None,
                inbound_secret: Some(INBOUND_SECRET.into()),
                issued: 0,
                calls: Vec::new(),
            })),
        }
    }

    pub fn calls(&self) -> Vec<(Option<String>, bool)> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Serves the fake, optionally behind `layer`, and returns a client
    /// without a bearer connected to it.
    pub async fn serve(&self, layer: Option<InboundAuthLayer>) -> Client {
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr: SocketAddr = incoming.local_addr().unwrap();
        let service = CredentialServiceServer::new(self.clone());
        match layer {
            Some(layer) => {
                let server = Server::builder()
                    .layer(layer)
                    .add_service(service)
                    .serve_with_incoming(incoming);
                tokio::spawn(server);
            }
            None => {
                let server = Server::builder()
                    .add_service(service)
                    .serve_with_incoming(incoming);
                tokio::spawn(server);
            }
        }
        Client::builder(format!("http://{addr}"))
            .connect_lazy()
            .unwrap()
    }
}

fn bearer<T>(request: &Request<T>) -> Option<String> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.to_owned())
}

impl FakeTessera {
    fn register(
        &self,
        request: Request<RegisterWorkspaceRequest>,
    ) -> Result<Response<RegisterWorkspaceResponse>, Status> {
        let bearer = bearer(&request);
        let request = request.into_inner();
        let mut state = self.state.lock().unwrap();
        state
            .calls
            .push((bearer.clone(), request.reissue_auth_token));
        let Some(bearer) = bearer else {
            return Err(Status::unauthenticated("no bearer"));
        };
        if bearer.starts_with("tsr_wsa_other") {
            return Err(Status::permission_denied("another workspace's token"));
        }
        let known =
            bearer == state.registration_token || state.auth_token.as_deref() == Some(&bearer);
        if !known {
            return Err(Status::unauthenticated("unknown token"));
        }
        if request.workspace_id != WORKSPACE {
            return Err(Status::permission_denied("another workspace"));
        }
        let auth_token = if state.auth_token.is_none() || request.reissue_auth_token {
            state.issued += 1;
            let token = format!("tsr_wsa_issued{}", state.issued);
            state.auth_token = Some(token.clone());
            Some(token)
        } else {
            None
        };
        Ok(Response::new(RegisterWorkspaceResponse {
            auth_token,
            platform_inbound_secret: state.inbound_secret.clone(),
            registered_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        }))
    }
}

// The whole impl is generated so that `async_trait` sees the expanded methods.
macro_rules! fake_service {
    ($($name:ident($req:ty) -> $res:ty;)*) => {
        #[tonic::async_trait]
        impl CredentialService for FakeTessera {
            async fn register_workspace(
                &self,
                request: Request<RegisterWorkspaceRequest>,
            ) -> Result<Response<RegisterWorkspaceResponse>, Status> {
                self.register(request)
            }

            $(
                async fn $name(&self, _: Request<$req>) -> Result<Response<$res>, Status> {
                    Err(Status::unimplemented("fake"))
                }
            )*
        }
    };
}

fake_service! {
    verify_bearer(VerifyBearerRequest) -> VerifyBearerResponse;
    mint_ticket(MintTicketRequest) -> MintTicketResponse;
    consume_ticket(ConsumeTicketRequest) -> ConsumeTicketResponse;
    get_internal_credential(GetInternalCredentialRequest) -> GetInternalCredentialResponse;
    issue_install_token(IssueInstallTokenRequest) -> IssueInstallTokenResponse;
    get_install_token_status(GetInstallTokenStatusRequest) -> GetInstallTokenStatusResponse;
    consume_install_token(ConsumeInstallTokenRequest) -> ConsumeInstallTokenResponse;
    provision_workspace(ProvisionWorkspaceRequest) -> ProvisionWorkspaceResponse;
    get_inbound_secret(GetInboundSecretRequest) -> GetInboundSecretResponse;
    create_access_token(CreateAccessTokenRequest) -> CreateAccessTokenResponse;
    list_credentials(ListCredentialsRequest) -> ListCredentialsResponse;
    revoke_credential(RevokeCredentialRequest) -> RevokeCredentialResponse;
    revoke_subject(RevokeSubjectRequest) -> RevokeSubjectResponse;
    invite_user(InviteUserRequest) -> InviteUserResponse;
    accept_invite(AcceptInviteRequest) -> AcceptInviteResponse;
    list_audit_events(ListAuditEventsRequest) -> ListAuditEventsResponse;
    rotate_inbound_secret(RotateInboundSecretRequest) -> RotateInboundSecretResponse;
    reissue_registration_token(ReissueRegistrationTokenRequest) -> ReissueRegistrationTokenResponse;
    delete_workspace(DeleteWorkspaceRequest) -> DeleteWorkspaceResponse;
}

/// A client for the same server authenticating with `secret`.
pub fn with_bearer(client: &Client, secret: &str) -> Client {
    client.with_bearer(Secret::new(secret)).unwrap()
}
