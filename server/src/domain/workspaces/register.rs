//! RegisterWorkspace: the runtime registers, learns the inbound secrets it
//! must accept, and confirms a next one it has persisted.

use tessera_client::Secret;

use super::{WORKSPACES, Workspaces, validate_id};
use crate::domain::audit;
use crate::domain::credentials;
use crate::domain::error::{Error, Result};
use crate::domain::principal::{Caller, PrincipalKind};
use crate::metrics;
use crate::store::{AuthTokenChange, Confirmation, CredentialKind, WorkspaceRecord};

/// What RegisterWorkspace hands back.
#[derive(Debug)]
pub(crate) struct Registration {
    /// A new auth token: on first registration or when re-issued.
    pub(crate) auth_token: Option<Secret>,
    /// The inbound secrets the runtime must accept.
    pub(crate) inbound: InboundSecrets,
    /// Time of this registration.
    pub(crate) registered_at: i64,
    /// True when an existing auth token was replaced.
    rotated: bool,
    /// True when this registration confirmed the next inbound secret.
    promoted: bool,
}

/// The inbound secrets a runtime accepts: the current one, the next one of
/// a rotation waiting for its confirmation, and the previous one until its
/// deadline.
#[derive(Debug, Default)]
pub(crate) struct InboundSecrets {
    /// The current secret, which the platform presents (`None`: legacy).
    pub(crate) current: Option<Secret>,
    /// The next secret and its public id, until confirmed.
    pub(crate) next: Option<(Secret, String)>,
    /// The secret the last rotation replaced, and until when it is accepted.
    pub(crate) previous: Option<(Secret, i64)>,
    /// While a next secret waits: register again within this long (ms).
    pub(crate) register_again_within_ms: Option<i64>,
}

impl Workspaces {
    /// RegisterWorkspace: registers the runtime of `workspace_id`,
    /// authenticated by that workspace's registration or auth token, and
    /// promotes the next inbound secret when `held_inbound_secret_id` is its
    /// id; audited as a registration, and as each rotation it completed.
    pub(crate) async fn register(
        &self,
        caller: &Caller,
        workspace_id: &str,
        reissue_auth_token: bool,
        held_inbound_secret_id: &str,
    ) -> Result<Registration> {
        let result = self
            .register_runtime(
                caller,
                workspace_id,
                reissue_auth_token,
                held_inbound_secret_id,
            )
            .await;
        let outcome = audit::outcome(&result);
        if result.is_ok() {
            metrics::event(WORKSPACES, "registered");
        }
        self.audit_by(caller, "workspace.register", workspace_id, outcome)
            .await;
        if let Ok(registration) = &result {
            if registration.rotated {
                metrics::event(WORKSPACES, "auth_token_rotated");
                self.audit_by(caller, "workspace.rotate_auth_token", workspace_id, outcome)
                    .await;
            }
            if registration.promoted {
                metrics::event(WORKSPACES, "inbound_secret_promoted");
                let action = "workspace.promote_inbound_secret";
                self.audit_by(caller, action, workspace_id, outcome).await;
            }
        }
        result
    }

    async fn register_runtime(
        &self,
        caller: &Caller,
        workspace_id: &str,
        reissue_auth_token: bool,
        held_inbound_secret_id: &str,
    ) -> Result<Registration> {
        let actor = caller.principal.actor();
        let caller = &caller.principal;
        validate_id(workspace_id)?;
        validate_held_id(held_inbound_secret_id)?;
        if caller.kind != PrincipalKind::Workspace || caller.subject != workspace_id {
            return Err(Error::PermissionDenied(
                "the bearer belongs to another workspace".into(),
            ));
        }
        let workspace = self.existing(workspace_id).await?;
        // An auth token rotated away since the caller was authenticated
        // must not register (nor rotate) any more.
        if caller.credential_id.starts_with("wsa_")
            && workspace.auth_hash.as_deref().and_then(|h| h.get(..16))
                != caller.credential_id.strip_prefix("wsa_")
        {
            return Err(Error::Unauthenticated("auth token rotated"));
        }
        let now = self.store.now_ms();
        let rotating = reissue_auth_token && workspace.auth_hash.is_some();
        let new_token = if reissue_auth_token || workspace.auth_hash.is_none() {
            let kind = CredentialKind::WorkspaceAuth;
            Some(credentials::issue(kind, workspace_id, actor, now, None)?)
        } else {
            None
        };
        let change = match (&new_token, reissue_auth_token) {
            (None, _) => AuthTokenChange::Keep,
            (Some(new), true) => AuthTokenChange::Replace {
                new: &new.record,
                current: workspace.auth_hash.as_deref(),
            },
            (Some(new), false) => AuthTokenChange::SetIfNone(&new.record),
        };
        let confirmation = (!held_inbound_secret_id.is_empty()).then(|| Confirmation {
            held_id: held_inbound_secret_id,
            previous_valid_until: now.saturating_add(self.grace_ms()),
        });
        let bearer = &caller.credential_id;
        let recorded =
            self.store
                .record_registration(workspace_id, now, bearer, change, confirmation);
        let registered = recorded
            .await?
            .ok_or(Error::Unauthenticated("revoked credential"))?;
        Ok(Registration {
            auth_token: new_token
                .filter(|_| registered.auth_token_written)
                .map(|new| new.secret),
            inbound: self.inbound_secrets(registered.workspace, now),
            registered_at: now,
            rotated: rotating && registered.auth_token_written,
            promoted: registered.promoted,
        })
    }

    /// What a runtime must accept of `workspace`'s secrets at `now`.
    fn inbound_secrets(&self, workspace: WorkspaceRecord, now: i64) -> InboundSecrets {
        let rotation = workspace.rotation;
        let waiting = rotation.next.is_some();
        InboundSecrets {
            current: workspace.inbound_secret,
            next: rotation.next.map(|next| (next.secret, next.id)),
            previous: rotation.previous.filter(|(_, until)| *until > now),
            register_again_within_ms: waiting.then(|| (self.grace_ms() / 2).max(1)),
        }
    }
}

/// A confirmation names what a registration handed out as
/// `next_inbound_secret_id`: `wsi_` and 16 lowercase hex digits (or
/// nothing), never free text that would reach the database.
fn validate_held_id(id: &str) -> Result<()> {
    let hex = |digits: &str| {
        digits.len() == 16
            && digits
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if id.is_empty() || id.strip_prefix("wsi_").is_some_and(hex) {
        Ok(())
    } else {
        Err(Error::invalid(
            "held_inbound_secret_id",
            "empty, or a next_inbound_secret_id: wsi_ and 16 lowercase hex digits",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_held_id;

    #[test]
    fn held_ids_are_public_inbound_ids() {
        for good in ["", "wsi_0123456789abcdef"] {
            assert!(validate_held_id(good).is_ok(), "{good:?} refused");
        }
        let long = format!("wsi_{}", "a".repeat(100_000));
        for bad in [
            "\0",
            "wsi_0123456789abcde\0",
            "wsi_0123456789ABCDEF",
            "wsa_0123456789abcdef",
            "wsi_0123456789abcdef0",
            "tsr_wsi_0123456789abcdef",
            "' OR 1=1 --",
            &long,
        ] {
            assert!(validate_held_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
