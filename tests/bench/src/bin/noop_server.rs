//! The baseline of the load harness: a bare tonic server with Tessera's
//! generated service, the same codec, the same build profile, the same
//! allocator (jemalloc, with the settings of `.cargo/config.toml`), and
//! answers of the same sizes as Tessera's, but no work behind any RPC.
//!
//! Listens on `--listen` (default `127.0.0.1:0`) and prints
//! `listening <addr>` on standard output once it accepts connections.
//! `--principals <file>` (lines of `<token>\t<hex of an encoded Principal>`)
//! makes VerifyBearer answer, for each listed request token, the principal
//! Tessera answered for it, so both send the same response bytes.

#![forbid(unsafe_code)]

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::HashMap;
use std::net::SocketAddr;

use prost::Message;

use tessera_client::pb::credential_service_server::{CredentialService, CredentialServiceServer};
use tessera_client::pb::*;
use tessera_client::token::{self, TokenKind};
use tessera_client::tonic::transport::Server;
use tessera_client::tonic::transport::server::TcpIncoming;
use tessera_client::tonic::{self, Request, Response, Status};

/// Canned answers, built once: the no-op does no work per call beyond the
/// framework's (decode the request, clone and encode the answer).
struct Noop {
    principal: Principal,
    /// VerifyBearer's answer per request token (`--principals`); other
    /// tokens get `principal`.
    by_token: HashMap<String, Principal>,
    ticket: String,
    identity: TicketIdentity,
    token: String,
    secret: String,
    now: prost_types::Timestamp,
}

impl Noop {
    fn new(by_token: HashMap<String, Principal>) -> Self {
        let now = prost_types::Timestamp {
            seconds: 1_767_225_600,
            nanos: 123_000_000,
        };
        // Field lengths follow Tessera's answers (a UUID subject, a
        // `<name>@system.local` email, the `Admin` group, a credential id).
        let principal = Principal {
            kind: PrincipalKind::Service as i32,
            subject: "0196b3a4-5f1e-7c3d-9a2b-4c5d6e7f8a9b".to_owned(),
            email: "bench@system.local".to_owned(),
            display_name: "Bench".to_owned(),
            groups: vec!["Admin".to_owned()],
            credential_id: "svc_bench_012345".to_owned(),
        };
        let identity = TicketIdentity {
            user_id: "user-0000".to_owned(),
            provider: "github".to_owned(),
            minted_at: Some(now),
            internal: false,
        };
        Noop {
            principal,
            by_token,
            ticket: token::generate(TokenKind::Ticket).expose().to_owned(),
            identity,
            token: token::generate(TokenKind::Ticket).expose().to_owned(),
            secret: "0123456789abcdef0123456789abcdef0123456789ab".to_owned(),
            now,
        }
    }
}

#[tonic::async_trait]
impl CredentialService for Noop {
    async fn verify_bearer(
        &self,
        request: Request<VerifyBearerRequest>,
    ) -> Result<Response<VerifyBearerResponse>, Status> {
        // One map lookup, as cheap as the lookup any real server must do.
        let principal = self
            .by_token
            .get(&request.get_ref().token)
            .unwrap_or(&self.principal);
        Ok(Response::new(VerifyBearerResponse {
            principal: Some(principal.clone()),
        }))
    }

    async fn mint_ticket(
        &self,
        _: Request<MintTicketRequest>,
    ) -> Result<Response<MintTicketResponse>, Status> {
        Ok(Response::new(MintTicketResponse {
            ticket: self.ticket.clone(),
            expires_at: Some(self.now),
        }))
    }

    async fn consume_ticket(
        &self,
        _: Request<ConsumeTicketRequest>,
    ) -> Result<Response<ConsumeTicketResponse>, Status> {
        Ok(Response::new(ConsumeTicketResponse {
            identity: Some(self.identity.clone()),
        }))
    }

    async fn get_internal_credential(
        &self,
        _: Request<GetInternalCredentialRequest>,
    ) -> Result<Response<GetInternalCredentialResponse>, Status> {
        Ok(Response::new(GetInternalCredentialResponse {
            credential: self.token.clone(),
        }))
    }

    async fn issue_install_token(
        &self,
        _: Request<IssueInstallTokenRequest>,
    ) -> Result<Response<IssueInstallTokenResponse>, Status> {
        Ok(Response::new(IssueInstallTokenResponse {
            install_token: Some(self.token.clone()),
            state: InstallTokenState::Pending as i32,
            issued_at: Some(self.now),
        }))
    }

    async fn get_install_token_status(
        &self,
        _: Request<GetInstallTokenStatusRequest>,
    ) -> Result<Response<GetInstallTokenStatusResponse>, Status> {
        Ok(Response::new(GetInstallTokenStatusResponse {
            state: InstallTokenState::Pending as i32,
            issued_at: Some(self.now),
            consumed_at: None,
        }))
    }

    async fn consume_install_token(
        &self,
        _: Request<ConsumeInstallTokenRequest>,
    ) -> Result<Response<ConsumeInstallTokenResponse>, Status> {
        Ok(Response::new(ConsumeInstallTokenResponse {
            admin: Some(self.principal.clone()),
            admin_token: self.token.clone(),
        }))
    }

    async fn provision_workspace(
        &self,
        request: Request<ProvisionWorkspaceRequest>,
    ) -> Result<Response<ProvisionWorkspaceResponse>, Status> {
        Ok(Response::new(ProvisionWorkspaceResponse {
            workspace_id: request.into_inner().workspace_id,
            registration_token: self.token.clone(),
            platform_inbound_secret: self.secret.clone(),
        }))
    }

    async fn register_workspace(
        &self,
        _: Request<RegisterWorkspaceRequest>,
    ) -> Result<Response<RegisterWorkspaceResponse>, Status> {
        Ok(Response::new(RegisterWorkspaceResponse {
            auth_token: None,
            platform_inbound_secret: Some(self.secret.clone()),
            registered_at: Some(self.now),
            ..Default::default()
        }))
    }

    async fn get_inbound_secret(
        &self,
        _: Request<GetInboundSecretRequest>,
    ) -> Result<Response<GetInboundSecretResponse>, Status> {
        Ok(Response::new(GetInboundSecretResponse {
            platform_inbound_secret: Some(self.secret.clone()),
            ..Default::default()
        }))
    }

    async fn create_access_token(
        &self,
        _: Request<CreateAccessTokenRequest>,
    ) -> Result<Response<CreateAccessTokenResponse>, Status> {
        Ok(Response::new(CreateAccessTokenResponse {
            access_token: self.secret.clone(),
            credential: Some(CredentialInfo::default()),
        }))
    }

    async fn list_credentials(
        &self,
        _: Request<ListCredentialsRequest>,
    ) -> Result<Response<ListCredentialsResponse>, Status> {
        Ok(Response::new(ListCredentialsResponse::default()))
    }

    async fn revoke_credential(
        &self,
        _: Request<RevokeCredentialRequest>,
    ) -> Result<Response<RevokeCredentialResponse>, Status> {
        Ok(Response::new(RevokeCredentialResponse {
            credential: Some(CredentialInfo::default()),
        }))
    }

    async fn revoke_subject(
        &self,
        _: Request<RevokeSubjectRequest>,
    ) -> Result<Response<RevokeSubjectResponse>, Status> {
        Ok(Response::new(RevokeSubjectResponse { revoked: 1 }))
    }

    async fn invite_user(
        &self,
        _: Request<InviteUserRequest>,
    ) -> Result<Response<InviteUserResponse>, Status> {
        Ok(Response::new(InviteUserResponse {
            invite_token: self.secret.clone(),
            user: Some(self.principal.clone()),
            expires_at: Some(self.now),
        }))
    }

    async fn accept_invite(
        &self,
        _: Request<AcceptInviteRequest>,
    ) -> Result<Response<AcceptInviteResponse>, Status> {
        Ok(Response::new(AcceptInviteResponse {
            user: Some(self.principal.clone()),
            access_token: self.token.clone(),
        }))
    }

    async fn list_audit_events(
        &self,
        _: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        Ok(Response::new(ListAuditEventsResponse::default()))
    }

    async fn rotate_inbound_secret(
        &self,
        _: Request<RotateInboundSecretRequest>,
    ) -> Result<Response<RotateInboundSecretResponse>, Status> {
        Ok(Response::new(RotateInboundSecretResponse::default()))
    }

    async fn reissue_registration_token(
        &self,
        _: Request<ReissueRegistrationTokenRequest>,
    ) -> Result<Response<ReissueRegistrationTokenResponse>, Status> {
        Ok(Response::new(ReissueRegistrationTokenResponse {
            registration_token: self.token.clone(),
            ..Default::default()
        }))
    }

    async fn delete_workspace(
        &self,
        _: Request<DeleteWorkspaceRequest>,
    ) -> Result<Response<DeleteWorkspaceResponse>, Status> {
        Ok(Response::new(DeleteWorkspaceResponse { revoked: 1 }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Tessera installs a subscriber; without one, every span hyper and h2
    // open on a call would fall back to the `log` crate (enabled in the
    // build by other crates), a cost of several thousand instructions per
    // call that a bare tonic server with a subscriber does not pay.
    tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default())?;
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut by_token = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?.parse()?,
            "--principals" => {
                by_token = read_principals(&args.next().ok_or("--principals needs a file")?)?;
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening {}", listener.local_addr()?);
    // Tessera's transport settings (its defaults), so only the work differs.
    Server::builder()
        .timeout(std::time::Duration::from_secs(10))
        .max_concurrent_streams(Some(256))
        .add_service(CredentialServiceServer::new(Noop::new(by_token)))
        // Like Tessera: TCP_NODELAY on every accepted connection.
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await?;
    Ok(())
}

/// Reads `<token>\t<hex of an encoded Principal>` lines.
fn read_principals(path: &str) -> Result<HashMap<String, Principal>, Box<dyn std::error::Error>> {
    let mut map = HashMap::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let (token, encoded) = line
            .split_once('\t')
            .ok_or_else(|| format!("{path}: expected <token>\\t<hex>"))?;
        map.insert(
            token.to_owned(),
            Principal::decode(hex::decode(encoded)?.as_slice())?,
        );
    }
    Ok(map)
}
