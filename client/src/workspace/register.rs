//! Registering a workspace runtime and keeping what Tessera returns.

use tonic::Code;

use super::{SaveError, WorkspaceFiles};
use crate::pb::{RegisterWorkspaceRequest, RegisterWorkspaceResponse};
use crate::{Client, ConnectError, Secret};

/// What a [`register_and_persist`] call did and got.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Registration {
    /// The auth token to call Tessera with from now on: the one issued by
    /// this call, else the one that was on disk; `None` only if Tessera
    /// issued none although one was asked for.
    pub auth_token: Option<Secret>,
    /// True when this call issued a new auth token (and rotated any
    /// previous one).
    pub auth_token_issued: bool,
    /// True when the call was made with the registration token, because no
    /// usable auth token was on disk.
    pub used_registration_token: bool,
    /// The platform inbound secret; `None` for a legacy workspace that has
    /// none (the file on disk, if any, is then left alone).
    pub inbound_secret: Option<Secret>,
    /// When Tessera recorded the registration.
    pub registered_at: Option<prost_types::Timestamp>,
}

/// Why [`register_and_persist`] failed. No variant carries a secret except
/// [`RegisterError::Persist`]'s registration, whose `Debug` is redacted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The registration token is not a valid bearer (empty, or whitespace or
    /// non-ASCII in it).
    #[error("invalid registration token")]
    InvalidRegistrationToken(#[source] ConnectError),
    /// Tessera refused the registration (see the status code: e.g.
    /// `UNAUTHENTICATED` for an unknown token, `PERMISSION_DENIED` for another
    /// workspace's) or could not be reached.
    #[error("RegisterWorkspace failed with {}", .0.code())]
    Rpc(#[source] tonic::Status),
    /// The registration succeeded but a secret could not be written. The
    /// registration is kept here so the runtime can go on with the values in
    /// memory; the next registration recovers the files.
    #[error("registered, but a secret could not be saved")]
    Persist {
        /// The failed write (the first one, when both failed).
        #[source]
        source: SaveError,
        /// What the registration returned.
        registration: Box<Registration>,
    },
}

/// Registers the workspace runtime `workspace_id` and saves what comes back
/// in `files`.
///
/// The bearer is chosen here, whatever `client` was built with (only its
/// connection is used):
/// * the auth token stored in `files`, without re-issue, when there is one;
/// * otherwise `registration_token` (from the runtime's environment) with
///   `reissue_auth_token`, which makes Tessera issue a new auth token and
///   revoke the lost one. This is also the fallback when the stored token is
///   refused (`UNAUTHENTICATED` / `PERMISSION_DENIED`: rotated elsewhere, or
///   another workspace's) or malformed, so a stale file cannot lock the
///   runtime out.
///
/// Then the auth token is saved when one was issued, and the inbound secret
/// whenever it is present (it is returned on every call, so this also picks
/// up a rotation). This is what lets a runtime whose configs directory came
/// back empty recover: see the [module docs](super#recovery).
pub async fn register_and_persist(
    client: &Client,
    workspace_id: &str,
    registration_token: &Secret,
    files: &WorkspaceFiles,
) -> Result<Registration, RegisterError> {
    if let Some(stored) = files.auth_token().load() {
        match register(client, workspace_id, &stored, false).await {
            Ok(response) => return persist(files, response, Some(stored), false),
            // A stored token that is corrupted, rotated elsewhere or another
            // workspace's: fall back to the registration token below.
            Err(Attempt::Malformed(_)) => {}
            Err(Attempt::Failed(status))
                if matches!(
                    status.code(),
                    Code::Unauthenticated | Code::PermissionDenied
                ) => {}
            Err(Attempt::Failed(status)) => return Err(RegisterError::Rpc(status)),
        }
    }
    match register(client, workspace_id, registration_token, true).await {
        Ok(response) => persist(files, response, None, true),
        Err(Attempt::Malformed(err)) => Err(RegisterError::InvalidRegistrationToken(err)),
        Err(Attempt::Failed(status)) => Err(RegisterError::Rpc(status)),
    }
}

/// Why one `RegisterWorkspace` attempt failed.
enum Attempt {
    /// The bearer is not a valid header value, so the call was not made.
    Malformed(ConnectError),
    /// The call failed.
    Failed(tonic::Status),
}

async fn register(
    client: &Client,
    workspace_id: &str,
    bearer: &Secret,
    reissue_auth_token: bool,
) -> Result<RegisterWorkspaceResponse, Attempt> {
    let mut client = client
        .with_bearer(bearer.clone())
        .map_err(Attempt::Malformed)?;
    let request = RegisterWorkspaceRequest {
        workspace_id: workspace_id.to_owned(),
        reissue_auth_token,
        ..Default::default()
    };
    client
        .register_workspace(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(Attempt::Failed)
}

fn persist(
    files: &WorkspaceFiles,
    response: RegisterWorkspaceResponse,
    stored_token: Option<Secret>,
    used_registration_token: bool,
) -> Result<Registration, RegisterError> {
    // An empty string is treated like an absent field: it would be no secret.
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty()).map(Secret::new);
    let issued = non_empty(response.auth_token);
    let inbound_secret = non_empty(response.platform_inbound_secret);

    // Both writes are attempted even if the first fails: each file is useful
    // on its own (the inbound secret admits the platform's calls).
    let mut failure = None;
    if let Some(token) = &issued {
        failure = files.auth_token().save(token).err();
    }
    if let Some(secret) = &inbound_secret
        && let Err(err) = files.inbound_secret().save(secret)
    {
        failure.get_or_insert(err);
    }

    let registration = Registration {
        auth_token_issued: issued.is_some(),
        auth_token: issued.or(stored_token),
        used_registration_token,
        inbound_secret,
        registered_at: response.registered_at,
    };
    match failure {
        None => Ok(registration),
        Some(source) => Err(RegisterError::Persist {
            source,
            registration: Box::new(registration),
        }),
    }
}
