//! A fake Tessera for the workspace-runtime tests: a real tonic server on
//! 127.0.0.1:0 implementing `RegisterWorkspace` with the server's rules
//! (auth token issued on first registration or re-issue, which rotates it;
//! inbound secret on every call), the inbound secret rotation (next secret,
//! confirmation by `held_inbound_secret_id`, previous secret during a grace
//! period, on a clock the tests move), `RotateInboundSecret` and
//! `GetInboundSecret` (without authentication), and UNIMPLEMENTED for
//! everything else.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tessera_client::pb::credential_service_server::{CredentialService, CredentialServiceServer};
use tessera_client::pb::*;
use tessera_client::token::credential_id;
use tessera_client::tonic::transport::Server;
use tessera_client::tonic::transport::server::TcpIncoming;
use tessera_client::tonic::{self, Request, Response, Status};
use tessera_client::workspace::InboundAuthLayer;
use tessera_client::{Client, Secret};

pub const WORKSPACE: &str = "ws-1";
pub const REGISTRATION_TOKEN: &str = "tsr_wsr_registration";
pub const INBOUND_SECRET: &str = "tsr_wsi_inbound";
/// The server's default grace period.
pub const GRACE: Duration = Duration::from_secs(600);

/// The public id of an inbound secret, as the server computes it.
pub fn inbound_id(secret: &str) -> String {
    credential_id("wsi", secret)
}

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
    /// A rotation's next secret, until confirmed.
    pub next_inbound_secret: Option<String>,
    /// The secret before the last promotion, and the end of its grace.
    pub previous: Option<(String, SystemTime)>,
    pub grace: Duration,
    /// How far the fake's clock is ahead of the system clock.
    pub clock_offset: Duration,
    /// Every non-empty held_inbound_secret_id received.
    pub held_ids: Vec<String>,
    /// Number of rotations, to name their secrets.
    pub rotations: u32,
    /// Confirmations are received but never promote (a lost answer).
    pub ignore_confirmations: bool,
}

impl State {
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.clock_offset
    }

    fn previous_in_grace(&self) -> Option<&(String, SystemTime)> {
        self.previous
            .as_ref()
            .filter(|(_, until)| self.now() < *until)
    }
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
                next_inbound_secret: None,
                previous: None,
                grace: GRACE,
                clock_offset: Duration::ZERO,
                held_ids: Vec::new(),
                rotations: 0,
                ignore_confirmations: false,
            })),
        }
    }

    pub fn calls(&self) -> Vec<(Option<String>, bool)> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn held_ids(&self) -> Vec<String> {
        self.state.lock().unwrap().held_ids.clone()
    }

    /// The fake's clock.
    pub fn now(&self) -> SystemTime {
        self.state.lock().unwrap().now()
    }

    /// Moves the fake's clock forward.
    pub fn advance(&self, by: Duration) {
        self.state.lock().unwrap().clock_offset += by;
    }

    /// What GetInboundSecret returns: the current secret only.
    pub fn platform_secret(&self) -> Option<String> {
        self.state.lock().unwrap().inbound_secret.clone()
    }

    /// RotateInboundSecret: a new next secret (replacing an unconfirmed
    /// one); during a grace FAILED_PRECONDITION unless `force`, which ends
    /// the grace. Returns the new next secret.
    pub fn rotate(&self, force: bool) -> Result<String, Status> {
        let mut state = self.state.lock().unwrap();
        if state.previous_in_grace().is_some() {
            if !force {
                return Err(Status::failed_precondition("grace period"));
            }
            state.previous = None;
        }
        state.rotations += 1;
        let next = format!("tsr_wsi_rotated{}", state.rotations);
        state.next_inbound_secret = Some(next.clone());
        Ok(next)
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
        if !request.held_inbound_secret_id.is_empty() {
            state.held_ids.push(request.held_inbound_secret_id.clone());
        }
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
        let held = &request.held_inbound_secret_id;
        let confirms = state
            .next_inbound_secret
            .as_deref()
            .is_some_and(|next| !held.is_empty() && inbound_id(next) == *held);
        if confirms && !state.ignore_confirmations {
            let until = state.now() + state.grace;
            let promoted = state.next_inbound_secret.take();
            state.previous = state.inbound_secret.take().map(|old| (old, until));
            state.inbound_secret = promoted;
        }
        let id = |secret: &Option<String>| secret.as_deref().map(inbound_id).unwrap_or_default();
        let previous = state.previous_in_grace().cloned();
        Ok(Response::new(RegisterWorkspaceResponse {
            auth_token,
            platform_inbound_secret: state.inbound_secret.clone(),
            inbound_secret_id: id(&state.inbound_secret),
            registered_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            next_platform_inbound_secret: state.next_inbound_secret.clone(),
            next_inbound_secret_id: id(&state.next_inbound_secret),
            previous_platform_inbound_secret: previous.as_ref().map(|(secret, _)| secret.clone()),
            previous_valid_until: previous.map(|(_, until)| until.into()),
            register_again_within: state
                .next_inbound_secret
                .is_some()
                .then(|| (state.grace / 2).try_into().unwrap()),
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

            async fn rotate_inbound_secret(
                &self,
                request: Request<RotateInboundSecretRequest>,
            ) -> Result<Response<RotateInboundSecretResponse>, Status> {
                let replaced_unconfirmed =
                    self.state.lock().unwrap().next_inbound_secret.is_some();
                let next = self.rotate(request.into_inner().force)?;
                Ok(Response::new(RotateInboundSecretResponse {
                    next_inbound_secret_id: inbound_id(&next),
                    replaced_unconfirmed,
                }))
            }

            async fn get_inbound_secret(
                &self,
                _: Request<GetInboundSecretRequest>,
            ) -> Result<Response<GetInboundSecretResponse>, Status> {
                let secret = self.platform_secret();
                Ok(Response::new(GetInboundSecretResponse {
                    inbound_secret_id: secret.as_deref().map(inbound_id).unwrap_or_default(),
                    platform_inbound_secret: secret,
                    refresh_before: None,
                }))
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
    create_access_token(CreateAccessTokenRequest) -> CreateAccessTokenResponse;
    list_credentials(ListCredentialsRequest) -> ListCredentialsResponse;
    revoke_credential(RevokeCredentialRequest) -> RevokeCredentialResponse;
    revoke_subject(RevokeSubjectRequest) -> RevokeSubjectResponse;
    invite_user(InviteUserRequest) -> InviteUserResponse;
    accept_invite(AcceptInviteRequest) -> AcceptInviteResponse;
    list_audit_events(ListAuditEventsRequest) -> ListAuditEventsResponse;
    reissue_registration_token(ReissueRegistrationTokenRequest) -> ReissueRegistrationTokenResponse;
    delete_workspace(DeleteWorkspaceRequest) -> DeleteWorkspaceResponse;
}

/// A client for the same server authenticating with `secret`.
pub fn with_bearer(client: &Client, secret: &str) -> Client {
    client.with_bearer(Secret::new(secret)).unwrap()
}
