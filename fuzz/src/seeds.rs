//! The seed inputs of each target, committed under `corpus/<target>/`.
//!
//! A target started with [`SEEDS_DIR_VAR`] set writes its seeds into that
//! directory and exits instead of fuzzing (`run.sh --seeds` does this), so
//! the seeds are made by the same code that reads them.

use std::path::Path;

use prost::Message;
use tessera_client::pb;
use tessera_client::token::{self, TokenKind};

use crate::input::{self, Bearer};
use crate::methods;

/// When set, the directory a target writes its seeds into before exiting.
pub const SEEDS_DIR_VAR: &str = "TESSERA_FUZZ_WRITE_SEEDS";

/// Writes `seeds()` into the directory [`SEEDS_DIR_VAR`] names and exits;
/// does nothing when it is not set.
pub fn write_if_asked(seeds: impl FnOnce() -> Vec<(String, Vec<u8>)>) {
    let Some(dir) = std::env::var_os(SEEDS_DIR_VAR) else {
        return;
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
    for (name, bytes) in seeds() {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    }
    std::process::exit(0);
}

/// A well-formed token of every kind, and near misses of one.
pub fn token_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = TokenKind::ALL
        .into_iter()
        .map(|kind| (kind.tag().to_owned(), token_of(kind).into_bytes()))
        .collect();
    let ticket = token_of(TokenKind::Ticket);
    let near_misses = [
        ("swapped-kind", ticket.replacen("tkt", "usr", 1)),
        ("truncated", ticket[..ticket.len() - 1].to_owned()),
        ("unknown-kind", ticket.replacen("tkt", "xyz", 1)),
        ("not-base58", format!("{}0OIl", &ticket[..ticket.len() - 4])),
        ("no-prefix", ticket["tsr_".len()..].to_owned()),
        ("too-long", format!("{ticket}{}", "1".repeat(40))),
    ];
    seeds.extend(near_misses.map(|(name, text)| (name.to_owned(), text.into_bytes())));
    seeds
}

/// `authorization` header values: each scheme spelling, tokens of every
/// kind, and the shapes the parser refuses.
pub fn bearer_seeds() -> Vec<(String, Vec<u8>)> {
    let ticket = token_of(TokenKind::Ticket);
    let mut seeds: Vec<(String, Vec<u8>)> = TokenKind::ALL
        .into_iter()
        .map(|kind| {
            (
                kind.tag().to_owned(),
                format!("Bearer {}", token_of(kind)).into_bytes(),
            )
        })
        .collect();
    let shapes = [
        ("lower-case", format!("bearer {ticket}")),
        ("two-spaces", format!("Bearer  {ticket}")),
        ("trailing-space", format!("Bearer {ticket} ")),
        ("no-token", "Bearer ".to_owned()),
        ("no-space", "Bearer".to_owned()),
        ("basic", "Basic dXNlcjpwYXNz".to_owned()),
        ("empty", String::new()),
    ];
    seeds.extend(shapes.map(|(name, text)| (name.to_owned(), text.into_bytes())));
    seeds
}

/// A valid request of every method, sent with the credential that may call
/// it (placeholders for the live ones), plus the refusals around them.
pub fn rpc_seeds() -> Vec<(String, Vec<u8>)> {
    let paths = methods::paths();
    let at = |name: &str| methods::index_of(&paths, name);
    let seed = |name: &str, method: &str, bearer: Bearer, message: Vec<u8>| {
        (name.to_owned(), input::encode(at(method), bearer, &message))
    };
    let mut seeds = vec![
        seed(
            "verify-bearer-user",
            "VerifyBearer",
            Bearer::Service,
            verify("$usr"),
        ),
        seed(
            "verify-bearer-workspace",
            "VerifyBearer",
            Bearer::Service,
            verify("$wsa"),
        ),
        seed(
            "verify-bearer-internal",
            "VerifyBearer",
            Bearer::Service,
            verify("$int"),
        ),
        seed(
            "verify-bearer-unknown",
            "VerifyBearer",
            Bearer::Service,
            verify(&token_of(TokenKind::UserAccess)),
        ),
        seed("mint-ticket", "MintTicket", Bearer::Service, mint("")),
        seed(
            "mint-ticket-purpose",
            "MintTicket",
            Bearer::Service,
            mint("ws-upgrade"),
        ),
        seed("mint-ticket-user", "MintTicket", Bearer::User, mint("")),
        seed(
            "consume-ticket",
            "ConsumeTicket",
            Bearer::Service,
            consume("$tkt"),
        ),
        seed(
            "consume-ticket-internal",
            "ConsumeTicket",
            Bearer::Service,
            consume("$int"),
        ),
        seed(
            "internal-credential",
            "GetInternalCredential",
            Bearer::Service,
            vec![],
        ),
        seed(
            "issue-install-token",
            "IssueInstallToken",
            Bearer::User,
            pb::IssueInstallTokenRequest { force: true }.encode_to_vec(),
        ),
        seed(
            "install-token-status",
            "GetInstallTokenStatus",
            Bearer::None,
            vec![],
        ),
        seed(
            "consume-install-token",
            "ConsumeInstallToken",
            Bearer::None,
            redeem(),
        ),
        seed(
            "provision-workspace",
            "ProvisionWorkspace",
            Bearer::Service,
            provision(),
        ),
        seed(
            "register-workspace",
            "RegisterWorkspace",
            Bearer::WorkspaceRegistration,
            register(false),
        ),
        seed(
            "register-workspace-reissue",
            "RegisterWorkspace",
            Bearer::WorkspaceAuth,
            register(true),
        ),
        seed(
            "inbound-secret",
            "GetInboundSecret",
            Bearer::Service,
            inbound(),
        ),
        seed(
            "create-access-token",
            "CreateAccessToken",
            Bearer::User,
            create_access_token(),
        ),
        seed(
            "list-credentials",
            "ListCredentials",
            Bearer::User,
            list_credentials(),
        ),
        seed(
            "revoke-credential",
            "RevokeCredential",
            Bearer::Service,
            revoke_credential(),
        ),
        seed(
            "revoke-subject",
            "RevokeSubject",
            Bearer::Service,
            revoke_subject(),
        ),
        seed("invite-user", "InviteUser", Bearer::User, invite_user()),
        seed(
            "accept-invite",
            "AcceptInvite",
            Bearer::None,
            accept_invite(),
        ),
        seed(
            "list-audit-events",
            "ListAuditEvents",
            Bearer::Service,
            list_audit_events(),
        ),
        seed(
            "rotate-inbound-secret",
            "RotateInboundSecret",
            Bearer::Service,
            workspace_call(|workspace_id| pb::RotateInboundSecretRequest {
                workspace_id,
                force: true,
            }),
        ),
        seed(
            "register-workspace-confirm",
            "RegisterWorkspace",
            Bearer::WorkspaceAuth,
            confirm(),
        ),
        seed(
            "reissue-registration-token",
            "ReissueRegistrationToken",
            Bearer::Service,
            workspace_call(|workspace_id| pb::ReissueRegistrationTokenRequest {
                workspace_id,
                revoke_auth_tokens: true,
            }),
        ),
        seed(
            "delete-workspace",
            "DeleteWorkspace",
            Bearer::Service,
            workspace_call(|workspace_id| pb::DeleteWorkspaceRequest { workspace_id }),
        ),
        seed("health", "Check", Bearer::None, vec![]),
        seed("unknown-method", "NoSuchMethod", Bearer::Service, vec![]),
        seed("two-bearers", "VerifyBearer", Bearer::Twice, verify("$usr")),
        seed("not-protobuf", "MintTicket", Bearer::Service, vec![0xff; 8]),
        // Found by this target on PostgreSQL, which refuses NUL in text.
        seed(
            "mint-ticket-nul",
            "MintTicket",
            Bearer::Service,
            mint_for("user\0"),
        ),
        seed(
            "consume-ticket-malformed-nul",
            "ConsumeTicket",
            Bearer::Service,
            consume("tsr\0tkt_abc"),
        ),
    ];
    let header = format!("Bearer {}", token_of(TokenKind::Service));
    seeds.push((
        "unknown-service-secret".to_owned(),
        input::encode_with_header(at("VerifyBearer"), header.as_bytes(), &verify("$usr")),
    ));
    seeds
}

fn token_of(kind: TokenKind) -> String {
    token::generate(kind).expose().to_owned()
}

fn verify(token: &str) -> Vec<u8> {
    pb::VerifyBearerRequest {
        token: token.into(),
    }
    .encode_to_vec()
}

fn mint(purpose: &str) -> Vec<u8> {
    mint_request("fuzz-user", purpose)
}

fn mint_for(user_id: &str) -> Vec<u8> {
    mint_request(user_id, "")
}

fn mint_request(user_id: &str, purpose: &str) -> Vec<u8> {
    pb::MintTicketRequest {
        user_id: user_id.into(),
        provider: "fuzz".into(),
        purpose: purpose.into(),
        ttl_seconds: 30,
    }
    .encode_to_vec()
}

fn consume(ticket: &str) -> Vec<u8> {
    pb::ConsumeTicketRequest {
        ticket: ticket.into(),
        purpose: String::new(),
    }
    .encode_to_vec()
}

fn redeem() -> Vec<u8> {
    pb::ConsumeInstallTokenRequest {
        install_token: token_of(TokenKind::Install),
        admin_email: "admin@example.com".into(),
        admin_name: "Admin".into(),
    }
    .encode_to_vec()
}

fn provision() -> Vec<u8> {
    pb::ProvisionWorkspaceRequest {
        workspace_id: "ws-seed".into(),
        name: "Seed".into(),
    }
    .encode_to_vec()
}

fn register(reissue: bool) -> Vec<u8> {
    pb::RegisterWorkspaceRequest {
        workspace_id: "$wid".into(),
        reissue_auth_token: reissue,
        ..Default::default()
    }
    .encode_to_vec()
}

/// A confirmation of a next inbound secret (an id no secret has).
fn confirm() -> Vec<u8> {
    pb::RegisterWorkspaceRequest {
        workspace_id: "$wid".into(),
        held_inbound_secret_id: "wsi_0123456789abcdef".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The request `make` builds for the fuzzed workspace.
fn workspace_call<M: Message>(make: impl FnOnce(String) -> M) -> Vec<u8> {
    make("$wid".into()).encode_to_vec()
}

fn inbound() -> Vec<u8> {
    pb::GetInboundSecretRequest {
        workspace_id: "$wid".into(),
    }
    .encode_to_vec()
}

fn create_access_token() -> Vec<u8> {
    pb::CreateAccessTokenRequest {
        name: "laptop".into(),
        ttl_seconds: 3_600,
    }
    .encode_to_vec()
}

fn list_credentials() -> Vec<u8> {
    pb::ListCredentialsRequest {
        include_revoked: true,
        page_size: 2,
        ..Default::default()
    }
    .encode_to_vec()
}

fn revoke_credential() -> Vec<u8> {
    pb::RevokeCredentialRequest {
        credential_id: "usr_0123456789abcdef".into(),
    }
    .encode_to_vec()
}

fn revoke_subject() -> Vec<u8> {
    pb::RevokeSubjectRequest {
        subject: "$wid".into(),
        disable: false,
    }
    .encode_to_vec()
}

fn invite_user() -> Vec<u8> {
    pb::InviteUserRequest {
        email: "new@example.com".into(),
        display_name: "New".into(),
        groups: vec!["Ops".into()],
        ttl_seconds: 3_600,
    }
    .encode_to_vec()
}

fn accept_invite() -> Vec<u8> {
    pb::AcceptInviteRequest {
        invite_token: token_of(TokenKind::Invite),
        token_name: "laptop".into(),
    }
    .encode_to_vec()
}

fn list_audit_events() -> Vec<u8> {
    pb::ListAuditEventsRequest {
        action: "bearer.verify".into(),
        since: Some(prost_types::Timestamp {
            seconds: 0,
            nanos: 1,
        }),
        page_size: 2,
        ..Default::default()
    }
    .encode_to_vec()
}
