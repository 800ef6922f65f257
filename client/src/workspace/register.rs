//! Registering a workspace runtime, keeping what Tessera returns, and
//! confirming a rotation's next inbound secret once it is safely stored.

use std::time::{Duration, SystemTime};

use tonic::Code;

use super::rotation::Outcome;
use super::{SaveError, WorkspaceFiles};
use crate::pb::{RegisterWorkspaceRequest, RegisterWorkspaceResponse};
use crate::{Client, ConnectError, Secret};

/// What a [`register_and_persist`] call did and got. The inbound fields
/// describe Tessera's last answer (after a confirmation, the promoted state).
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
    /// The current platform inbound secret; `None` for a legacy workspace
    /// that has none (the files on disk, if any, are then left alone).
    pub inbound_secret: Option<Secret>,
    /// When Tessera recorded the registration.
    pub registered_at: Option<prost_types::Timestamp>,
    /// Public id of the next inbound secret while a rotation still waits
    /// for its confirmation; `None` when none is pending.
    pub next_inbound_secret_id: Option<String>,
    /// Until when the previous inbound secret is accepted, during the grace
    /// period after a rotation.
    pub previous_valid_until: Option<SystemTime>,
    /// Register again within this long: set while a rotation waits for its
    /// confirmation (see [`keep_registered`](super::keep_registered)).
    pub register_again_within: Option<Duration>,
    /// What became of the confirmation of a next inbound secret.
    pub confirmation: Confirmation,
}

/// Whether [`register_and_persist`] confirmed a rotation's next secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirmation {
    /// Tessera offered no next secret: nothing to confirm.
    NotNeeded,
    /// The next secret was saved, read back, and confirmed; Tessera promoted
    /// it, so the platform presents it from now on.
    Promoted,
    /// Confirmed, but Tessera did not promote it (a new rotation replaced it
    /// in between): the new next secret is saved; register again.
    NotPromoted,
    /// Not sent: the next secret could not be saved or read back, so the
    /// platform keeps presenting the current one, which is still accepted.
    NotSent,
    /// Sent, but the call failed with this code; the rotation waits for the
    /// next registration.
    Failed(Code),
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
    /// memory; the next registration recovers the files. A next inbound
    /// secret that could not be written was not confirmed.
    #[error("registered, but a secret could not be saved")]
    Persist {
        /// The failed write (the first one, when several failed).
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
/// Then the auth token is saved when one was issued, and the inbound secrets
/// whenever the current one is present: the current, the next (during a
/// rotation) and the previous with its deadline (during a grace period);
/// files for a next or previous secret Tessera no longer reports are
/// removed. If a next secret was saved and reads back equal, one more
/// `RegisterWorkspace` (with the auth token) carries its id in
/// `held_inbound_secret_id`: this confirms the rotation, Tessera promotes
/// the next secret to current, and the promoted state is saved too. A next
/// secret that could not be saved is never confirmed.
///
/// Registrations through one [`WorkspaceFiles`] (and its clones) run one at
/// a time, so their answers are saved in the order Tessera gave them. This
/// is also what lets a runtime whose configs directory came back empty
/// recover: see the [module docs](super#recovery).
pub async fn register_and_persist(
    client: &Client,
    workspace_id: &str,
    registration_token: &Secret,
    files: &WorkspaceFiles,
) -> Result<Registration, RegisterError> {
    let _one_at_a_time = files.registering().lock().await;
    let (response, stored, used_registration_token) =
        first_call(client, workspace_id, registration_token, files).await?;
    let mut outcome = Outcome::new(stored, used_registration_token);
    let Some(held) = outcome.apply(files, response) else {
        return outcome.finish();
    };
    let bearer = outcome
        .auth_token()
        .cloned()
        .unwrap_or_else(|| registration_token.clone());
    match register(client, workspace_id, &bearer, false, held.clone()).await {
        Ok(response) => {
            outcome.apply(files, response);
            outcome.confirmed(&held);
        }
        Err(Attempt::Failed(status)) => outcome.confirmation_failed(status.code()),
        // An issued token is always a valid header value; should it not be,
        // the call was never made.
        Err(Attempt::Malformed(_)) => outcome.confirmation_failed(Code::InvalidArgument),
    }
    outcome.finish()
}

/// The first call: with the stored auth token, else the registration token.
/// Returns the response, the stored token it used, and whether the
/// registration token was used.
async fn first_call(
    client: &Client,
    workspace_id: &str,
    registration_token: &Secret,
    files: &WorkspaceFiles,
) -> Result<(RegisterWorkspaceResponse, Option<Secret>, bool), RegisterError> {
    if let Some(stored) = files.auth_token().load() {
        match register(client, workspace_id, &stored, false, String::new()).await {
            Ok(response) => return Ok((response, Some(stored), false)),
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
    match register(
        client,
        workspace_id,
        registration_token,
        true,
        String::new(),
    )
    .await
    {
        Ok(response) => Ok((response, None, true)),
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
    held_inbound_secret_id: String,
) -> Result<RegisterWorkspaceResponse, Attempt> {
    let mut client = client
        .with_bearer(bearer.clone())
        .map_err(Attempt::Malformed)?;
    let request = RegisterWorkspaceRequest {
        workspace_id: workspace_id.to_owned(),
        reissue_auth_token,
        held_inbound_secret_id,
    };
    client
        .register_workspace(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(Attempt::Failed)
}
