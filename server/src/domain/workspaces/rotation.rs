//! The platform's side of the inbound secret: reading it back, rotating
//! it, and ending the grace of the one a rotation replaced. The protocol is
//! described in `docs/design.md` ("Rotating a workspace's inbound secret").

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::{WORKSPACES, Workspaces, not_found, validate_id};
use crate::domain::audit::{self, Event, OK};
use crate::domain::error::{Error, Result};
use crate::domain::principal::Caller;
use crate::metrics;
use crate::store::RotationStart;

/// Workspaces whose previous secret one sweep drops at most.
const EXPIRY_SWEEP: u64 = 1_000;

/// Who the audit log names for what the server does by itself.
const SWEEPER: &str = "server";

/// What GetInboundSecret hands back.
#[derive(Debug)]
pub(crate) struct InboundRead {
    /// The current secret (`None` for legacy workspaces).
    pub(crate) secret: Option<Secret>,
    /// Its public id.
    pub(crate) id: Option<String>,
    /// When the platform must read it again.
    pub(crate) refresh_before: i64,
}

/// What RotateInboundSecret did.
#[derive(Debug)]
pub(crate) struct RotationStarted {
    /// Public id of the next secret.
    pub(crate) next_id: String,
    /// True when it replaced a next secret not yet confirmed.
    pub(crate) replaced_unconfirmed: bool,
}

impl Workspaces {
    /// GetInboundSecret: the current inbound secret of `workspace_id`, for
    /// an Admin member; every read is audited.
    pub(crate) async fn inbound_secret(
        &self,
        caller: &Caller,
        workspace_id: &str,
    ) -> Result<InboundRead> {
        let result = self.read_inbound_secret(caller, workspace_id).await;
        let outcome = audit::outcome(&result);
        let action = "workspace.read_inbound_secret";
        self.audit_by(caller, action, workspace_id, outcome).await;
        result
    }

    async fn read_inbound_secret(
        &self,
        caller: &Caller,
        workspace_id: &str,
    ) -> Result<InboundRead> {
        caller.require_admin()?;
        validate_id(workspace_id)?;
        let secret = self.existing(workspace_id).await?.inbound_secret;
        Ok(InboundRead {
            id: secret.as_ref().map(inbound_id),
            secret,
            // A secret read now is accepted at least this long after a
            // rotation is confirmed, however soon that happens.
            refresh_before: self.store.now_ms().saturating_add(self.grace_ms()),
        })
    }

    /// RotateInboundSecret: draws the next inbound secret of
    /// `workspace_id`, which the runtime learns on its next registration.
    pub(crate) async fn rotate_inbound_secret(
        &self,
        caller: &Caller,
        workspace_id: &str,
        force: bool,
    ) -> Result<RotationStarted> {
        let result = self.start_rotation(caller, workspace_id, force).await;
        let outcome = audit::outcome(&result);
        let action = "workspace.rotate_inbound_secret";
        self.audit_by(caller, action, workspace_id, outcome).await;
        result
    }

    async fn start_rotation(
        &self,
        caller: &Caller,
        workspace_id: &str,
        force: bool,
    ) -> Result<RotationStarted> {
        caller.require_admin()?;
        validate_id(workspace_id)?;
        let next = token::try_generate(TokenKind::WorkspaceInbound)?;
        let next_id = inbound_id(&next);
        let now = self.store.now_ms();
        let start = self
            .store
            .start_inbound_rotation(workspace_id, &next, &next_id, now, force);
        match start.await? {
            RotationStart::Started {
                replaced_unconfirmed,
                ended_grace,
            } => {
                metrics::event(WORKSPACES, "inbound_rotation_started");
                if ended_grace {
                    metrics::event(WORKSPACES, "inbound_grace_ended");
                    let action = "workspace.end_inbound_grace";
                    self.audit_by(caller, action, workspace_id, OK).await;
                }
                Ok(RotationStarted {
                    next_id,
                    replaced_unconfirmed,
                })
            }
            RotationStart::InGrace(until) => Err(Error::FailedPrecondition(format!(
                "the secret the last rotation replaced is accepted for {} s more; \
                 rotate again after that, or with force to refuse it at once",
                (until - now + 999) / 1_000
            ))),
            RotationStart::Unknown => Err(not_found(workspace_id)),
        }
    }

    /// Drops the previous inbound secret of every workspace whose grace has
    /// ended, auditing each; returns how many.
    pub(crate) async fn expire_previous_secrets(&self) -> Result<usize> {
        let now = self.store.now_ms();
        let expired = self
            .store
            .expire_previous_inbound_secrets(now, EXPIRY_SWEEP)
            .await?;
        for id in &expired {
            metrics::event(WORKSPACES, "inbound_previous_expired");
            let resource = format!("workspace:{id}");
            let event = Event {
                action: "workspace.expire_previous_inbound_secret",
                resource: &resource,
                outcome: OK,
            };
            self.audit.as_actor(SWEEPER, "", None, event).await;
        }
        Ok(expired.len())
    }
}

/// The public id of an inbound secret.
pub(crate) fn inbound_id(secret: &Secret) -> String {
    token::credential_id(TokenKind::WorkspaceInbound.tag(), secret.expose())
}
