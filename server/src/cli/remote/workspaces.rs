//! `tessera workspace …`.

use serde_json::json;
use tessera_client::{Client, pb};

use super::output::{Printed, credential_json, fields, json_time, when};
use super::{Failure, WorkspaceCommand};

/// Runs a `tessera workspace` command.
pub(super) async fn run(mut client: Client, command: WorkspaceCommand) -> Result<Printed, Failure> {
    match command {
        WorkspaceCommand::Provision { id, name } => provision(client, id, name).await,
        WorkspaceCommand::Register {
            id,
            reissue_auth_token,
            held_inbound_secret_id,
        } => {
            let request = pb::RegisterWorkspaceRequest {
                workspace_id: id,
                reissue_auth_token,
                held_inbound_secret_id,
            };
            let registered = client.register_workspace(request).await?.into_inner();
            Ok(registration(&registered))
        }
        WorkspaceCommand::RotateInbound { id, force } => {
            let request = pb::RotateInboundSecretRequest {
                workspace_id: id,
                force,
            };
            let started = client.rotate_inbound_secret(request).await?.into_inner();
            let text = fields(&[
                (
                    "next inbound secret",
                    started.next_inbound_secret_id.clone(),
                ),
                (
                    "replaced an unconfirmed one",
                    started.replaced_unconfirmed.to_string(),
                ),
            ]);
            let json = json!({
                "next_inbound_secret_id": started.next_inbound_secret_id,
                "replaced_unconfirmed": started.replaced_unconfirmed,
            });
            Ok(Printed { text, json })
        }
        WorkspaceCommand::ReissueRegistration {
            id,
            revoke_auth_tokens,
        } => reissue(client, id, revoke_auth_tokens).await,
        WorkspaceCommand::Delete { id } => {
            let request = pb::DeleteWorkspaceRequest { workspace_id: id };
            let deleted = client.delete_workspace(request).await?.into_inner();
            Ok(Printed {
                text: fields(&[("revoked", deleted.revoked.to_string())]),
                json: json!({ "revoked": deleted.revoked }),
            })
        }
        WorkspaceCommand::InboundSecret { id } => {
            let request = pb::GetInboundSecretRequest { workspace_id: id };
            let read = client.get_inbound_secret(request).await?.into_inner();
            let secret = read.platform_inbound_secret.unwrap_or_default();
            let text = fields(&[
                ("inbound secret", secret.clone()),
                ("id", read.inbound_secret_id.clone()),
                ("read again before", when(read.refresh_before.as_ref())),
            ]);
            let json = json!({
                "platform_inbound_secret": secret,
                "inbound_secret_id": read.inbound_secret_id,
                "refresh_before": json_time(read.refresh_before.as_ref()),
            });
            Ok(Printed { text, json })
        }
    }
}

async fn provision(mut client: Client, id: String, name: String) -> Result<Printed, Failure> {
    let request = pb::ProvisionWorkspaceRequest {
        workspace_id: id,
        name,
    };
    let made = client.provision_workspace(request).await?.into_inner();
    let text = fields(&[
        ("workspace", made.workspace_id.clone()),
        ("registration token", made.registration_token.clone()),
        ("inbound secret", made.platform_inbound_secret.clone()),
    ]);
    let json = json!({
        "workspace_id": made.workspace_id,
        "registration_token": made.registration_token,
        "platform_inbound_secret": made.platform_inbound_secret,
    });
    Ok(Printed { text, json })
}

async fn reissue(
    mut client: Client,
    id: String,
    revoke_auth_tokens: bool,
) -> Result<Printed, Failure> {
    let request = pb::ReissueRegistrationTokenRequest {
        workspace_id: id,
        revoke_auth_tokens,
    };
    let reissued = client
        .reissue_registration_token(request)
        .await?
        .into_inner();
    let credential = reissued.credential.unwrap_or_default();
    let text = fields(&[
        ("registration token", reissued.registration_token.clone()),
        ("id", credential.credential_id.clone()),
        ("revoked", reissued.revoked.to_string()),
    ]);
    let json = json!({
        "registration_token": reissued.registration_token,
        "credential": credential_json(&credential),
        "revoked": reissued.revoked,
    });
    Ok(Printed { text, json })
}

fn registration(registered: &pb::RegisterWorkspaceResponse) -> Printed {
    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    let mut pairs = vec![
        (
            "inbound secret",
            optional(&registered.platform_inbound_secret),
        ),
        ("registered", when(registered.registered_at.as_ref())),
    ];
    if let Some(token) = &registered.auth_token {
        pairs.insert(0, ("auth token", token.clone()));
    }
    if let Some(next) = &registered.next_platform_inbound_secret {
        pairs.push(("next inbound secret", next.clone()));
        pairs.push(("next id", registered.next_inbound_secret_id.clone()));
    }
    if let Some(previous) = &registered.previous_platform_inbound_secret {
        pairs.push(("previous inbound secret", previous.clone()));
        pairs.push((
            "previous valid until",
            when(registered.previous_valid_until.as_ref()),
        ));
    }
    let json = json!({
        "auth_token": registered.auth_token,
        "platform_inbound_secret": registered.platform_inbound_secret,
        "inbound_secret_id": registered.inbound_secret_id,
        "registered_at": json_time(registered.registered_at.as_ref()),
        "next_platform_inbound_secret": registered.next_platform_inbound_secret,
        "next_inbound_secret_id": registered.next_inbound_secret_id,
        "previous_platform_inbound_secret": registered.previous_platform_inbound_secret,
        "previous_valid_until": json_time(registered.previous_valid_until.as_ref()),
    });
    Printed {
        text: fields(&pairs),
        json,
    }
}
