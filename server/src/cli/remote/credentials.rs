//! `tessera token|user|audit|verify|ticket`.

use std::time::Duration;

use serde_json::json;
use tessera_client::{Client, Secret, pb};

use super::output::{
    Printed, credential_json, fields, json_time, kind_name, principal_json, table, when,
};
use super::{AuditCommand, Failure, TicketCommand, TokenCommand, UserCommand, argument_or_stdin};

/// `tessera token …`.
pub(super) async fn token(mut client: Client, command: TokenCommand) -> Result<Printed, Failure> {
    match command {
        TokenCommand::Create { name, ttl } => {
            let ttl = ttl.unwrap_or(Duration::ZERO);
            let (token, credential) = client.mint_access_token(&name, ttl).await?;
            let text = fields(&[
                ("access token", token.expose().to_owned()),
                ("id", credential.credential_id.clone()),
                ("expires", when(credential.expires_at.as_ref())),
            ]);
            let json = json!({
                "access_token": token.expose(),
                "credential": credential_json(&credential),
            });
            Ok(Printed { text, json })
        }
        TokenCommand::List {
            subject,
            include_revoked,
            include_expired,
        } => {
            let filter = pb::ListCredentialsRequest {
                subject,
                include_revoked,
                include_expired,
                page_size: 1_000,
                ..Default::default()
            };
            let credentials = client.all_credentials(filter).await?;
            Ok(credential_list(&credentials))
        }
        TokenCommand::Revoke { id } => {
            let request = pb::RevokeCredentialRequest { credential_id: id };
            let response = client.revoke_credential(request).await?.into_inner();
            let credential = response.credential.unwrap_or_default();
            let text = fields(&[
                ("revoked", credential.credential_id.clone()),
                ("at", when(credential.revoked_at.as_ref())),
            ]);
            Ok(Printed {
                text,
                json: credential_json(&credential),
            })
        }
    }
}

fn credential_list(credentials: &[pb::CredentialInfo]) -> Printed {
    let rows: Vec<Vec<String>> = credentials
        .iter()
        .map(|c| {
            let state = if c.revoked_at.is_some() {
                format!("revoked {}", when(c.revoked_at.as_ref()))
            } else {
                when(c.expires_at.as_ref())
            };
            let name = if c.slot.is_empty() {
                c.name.clone()
            } else {
                format!("{} ({})", c.name, c.slot)
            };
            vec![
                c.credential_id.clone(),
                kind_name(c.kind()),
                c.subject.clone(),
                name,
                state,
                when(c.last_used_at.as_ref()),
            ]
        })
        .collect();
    let headers = ["ID", "KIND", "SUBJECT", "NAME", "EXPIRES", "LAST USED"];
    Printed {
        text: table(&headers, &rows),
        json: credentials.iter().map(credential_json).collect(),
    }
}

/// `tessera user …`; `in_body` is the invite or install token from
/// `TESSERA_TOKEN`, sent in the request.
pub(super) async fn user(
    mut client: Client,
    command: UserCommand,
    in_body: Option<Secret>,
) -> Result<Printed, Failure> {
    match command {
        UserCommand::Invite {
            email,
            name,
            groups,
            ttl,
        } => {
            let ttl_seconds = seconds(ttl)?;
            let request = pb::InviteUserRequest {
                email,
                display_name: name,
                groups,
                ttl_seconds,
            };
            let response = client.invite_user(request).await?.into_inner();
            let user = response.user.unwrap_or_default();
            let text = fields(&[
                ("invite", response.invite_token.clone()),
                ("user", user.subject.clone()),
                ("expires", when(response.expires_at.as_ref())),
            ]);
            let json = json!({
                "invite_token": response.invite_token,
                "user": principal_json(&user),
                "expires_at": json_time(response.expires_at.as_ref()),
            });
            Ok(Printed { text, json })
        }
        UserCommand::Accept { token_name } => {
            let request = pb::AcceptInviteRequest {
                invite_token: redeemed(in_body, "the invite (tsr_inv_…)")?,
                token_name,
            };
            let response = client.accept_invite(request).await?.into_inner();
            let user = response.user.unwrap_or_default();
            let token = response.access_token;
            Ok(user_and_token(("user", &user), ("access_token", token)))
        }
        UserCommand::FirstAdmin { email, name } => {
            let request = pb::ConsumeInstallTokenRequest {
                install_token: redeemed(in_body, "the install token (tsr_ins_…)")?,
                admin_email: email,
                admin_name: name,
            };
            let response = client.consume_install_token(request).await?.into_inner();
            let admin = response.admin.unwrap_or_default();
            let token = response.admin_token;
            Ok(user_and_token(("admin", &admin), ("admin_token", token)))
        }
    }
}

/// The credential a redemption sends in its message (from `TESSERA_TOKEN`
/// or `--token-file`), `what` naming it when it is missing.
fn redeemed(in_body: Option<Secret>, what: &str) -> Result<String, Failure> {
    let secret = in_body
        .ok_or_else(|| Failure::local(format!("set TESSERA_TOKEN (or --token-file) to {what}")))?;
    Ok(secret.expose().to_owned())
}

/// A user and the access token a redemption gave it, under the JSON keys
/// of its response.
fn user_and_token(user: (&str, &pb::Principal), token: (&str, String)) -> Printed {
    let ((user_key, user), (token_key, token)) = (user, token);
    let text = fields(&[
        ("access token", token.clone()),
        ("user", user.subject.clone()),
        ("email", user.email.clone()),
    ]);
    let json = json!({ token_key: token, user_key: principal_json(user) });
    Printed { text, json }
}

/// `tessera audit list`.
pub(super) async fn audit(mut client: Client, command: AuditCommand) -> Result<Printed, Failure> {
    let AuditCommand::List {
        actor,
        credential_id,
        action,
        since,
        limit,
    } = command;
    let since = since.map(|ago| {
        let now = std::time::SystemTime::now();
        prost_types::Timestamp::from(now.checked_sub(ago).unwrap_or(std::time::UNIX_EPOCH))
    });
    let request = pb::ListAuditEventsRequest {
        actor,
        credential_id,
        action,
        since,
        page_size: limit.clamp(1, 1_000),
        ..Default::default()
    };
    let events = client.list_audit_events(request).await?.into_inner().events;
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                when(e.at.as_ref()),
                e.actor.clone(),
                e.action.clone(),
                e.resource.clone(),
                e.outcome.clone(),
                e.credential_id.clone(),
            ]
        })
        .collect();
    let headers = ["AT", "ACTOR", "ACTION", "RESOURCE", "OUTCOME", "CREDENTIAL"];
    let json = events
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "at": json_time(e.at.as_ref()), "actor": e.actor,
                "action": e.action, "resource": e.resource, "outcome": e.outcome,
                "credential_id": e.credential_id, "peer": e.peer,
            })
        })
        .collect();
    Ok(Printed {
        text: table(&headers, &rows),
        json,
    })
}

/// `tessera verify [TOKEN]`.
pub(super) async fn verify(mut client: Client, token: Option<String>) -> Result<Printed, Failure> {
    let token = argument_or_stdin(token, "the token")?;
    let request = pb::VerifyBearerRequest { token };
    let principal = client.verify_bearer(request).await?.into_inner().principal;
    let principal = principal.unwrap_or_default();
    let json = principal_json(&principal);
    let text = fields(&[
        ("kind", json["kind"].as_str().unwrap_or_default().to_owned()),
        ("subject", principal.subject.clone()),
        ("email", principal.email.clone()),
        ("groups", principal.groups.join(", ")),
        ("credential", principal.credential_id.clone()),
    ]);
    Ok(Printed { text, json })
}

/// `tessera ticket …`.
pub(super) async fn ticket(mut client: Client, command: TicketCommand) -> Result<Printed, Failure> {
    match command {
        TicketCommand::Mint {
            user_id,
            provider,
            purpose,
            ttl_seconds,
        } => {
            let request = pb::MintTicketRequest {
                user_id,
                provider,
                purpose,
                ttl_seconds,
            };
            let minted = client.mint_ticket(request).await?.into_inner();
            let text = fields(&[
                ("ticket", minted.ticket.clone()),
                ("expires", when(minted.expires_at.as_ref())),
            ]);
            let json = json!({
                "ticket": minted.ticket,
                "expires_at": json_time(minted.expires_at.as_ref()),
            });
            Ok(Printed { text, json })
        }
        TicketCommand::Consume { purpose } => {
            let ticket = argument_or_stdin(None, "the ticket")?;
            let request = pb::ConsumeTicketRequest { ticket, purpose };
            let response = client.consume_ticket(request).await?.into_inner();
            let identity = response.identity.unwrap_or_default();
            let text = fields(&[
                ("user", identity.user_id.clone()),
                ("provider", identity.provider.clone()),
                ("minted", when(identity.minted_at.as_ref())),
            ]);
            let json = json!({
                "user_id": identity.user_id,
                "provider": identity.provider,
                "minted_at": json_time(identity.minted_at.as_ref()),
                "internal": identity.internal,
            });
            Ok(Printed { text, json })
        }
    }
}

/// A lifetime as whole seconds for a request (0: the server's default).
fn seconds(ttl: Option<Duration>) -> Result<u32, Failure> {
    let seconds = ttl.map_or(0, |ttl| ttl.as_secs());
    u32::try_from(seconds).map_err(|_| Failure::local("--ttl is too long"))
}
