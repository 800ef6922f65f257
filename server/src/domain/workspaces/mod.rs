//! Workspaces: the platform provisions them, their runtimes register
//! (`register.rs`), their inbound secret rotates (`rotation.rs`), and an
//! admin can replace their registration token or delete them (`admin.rs`).

mod admin;
mod register;
mod rotation;

use std::sync::Arc;
use std::time::Duration;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::audit::{Auditor, Event, OK};
use super::credentials;
use super::error::{Error, Result};
use super::principal::Caller;
use super::validate;
use crate::metrics;
use crate::store::{CredentialKind, Store, WorkspaceRecord};

pub(crate) use register::Registration;
pub(crate) use rotation::inbound_id;

/// Counter of workspace events.
pub(super) const WORKSPACES: &str = "tessera_workspace_events_total";

/// Longest workspace id accepted.
const MAX_ID_LEN: usize = 128;

/// How long the runtime accepts the inbound secret a confirmed rotation
/// replaced, unless configured: platforms re-read the secret within it.
pub(crate) const DEFAULT_INBOUND_GRACE: Duration = Duration::from_secs(10 * 60);

/// The settings of the workspace RPCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WorkspacePolicy {
    /// How long the inbound secret a confirmed rotation replaced stays
    /// accepted (and how often a platform must re-read the secret).
    pub inbound_grace: Duration,
}

impl Default for WorkspacePolicy {
    fn default() -> Self {
        Self {
            inbound_grace: DEFAULT_INBOUND_GRACE,
        }
    }
}

/// What ProvisionWorkspace hands back, once.
#[derive(Debug)]
pub(crate) struct Provisioned {
    /// The new workspace's id.
    pub(crate) workspace_id: String,
    /// For the runtime's environment; valid for re-registration.
    pub(crate) registration_token: Secret,
    /// What the platform presents on its calls to the workspace.
    pub(crate) inbound_secret: Secret,
}

/// The workspace RPCs.
pub(crate) struct Workspaces {
    store: Arc<dyn Store>,
    audit: Auditor,
    policy: WorkspacePolicy,
}

impl Workspaces {
    pub(crate) fn new(store: Arc<dyn Store>, policy: WorkspacePolicy) -> Self {
        Self {
            audit: Auditor::new(store.clone()),
            store,
            policy,
        }
    }

    /// ProvisionWorkspace: creates workspace `id` with a fresh inbound
    /// secret and registration token.
    pub(crate) async fn provision(
        &self,
        caller: &Caller,
        id: &str,
        name: &str,
    ) -> Result<Provisioned> {
        caller.require_admin()?;
        validate_id(id)?;
        validate::display_name("name", name)?;
        let now = self.store.now_ms();
        let kind = CredentialKind::WorkspaceRegistration;
        let registration = credentials::issue(kind, id, caller.principal.actor(), now, None)?;
        let inbound_secret = token::try_generate(TokenKind::WorkspaceInbound)?;
        let record = WorkspaceRecord {
            id: id.to_owned(),
            name: if name.is_empty() { id } else { name }.to_owned(),
            inbound_secret: Some(inbound_secret.clone()),
            rotation: Default::default(),
            registration_hash: registration.record.hash.clone(),
            auth_hash: None,
            created_at: now,
            registered_at: None,
            last_registered_at: None,
        };
        let inserted = self.store.insert_workspace(&record, &registration.record);
        if !inserted.await? {
            return Err(Error::AlreadyExists(format!("workspace {id}")));
        }
        metrics::event(WORKSPACES, "provisioned");
        self.audit_by(caller, "workspace.provision", id, OK).await;
        Ok(Provisioned {
            workspace_id: id.to_owned(),
            registration_token: registration.secret,
            inbound_secret,
        })
    }

    /// The workspace `id`, or `NOT_FOUND`.
    async fn existing(&self, id: &str) -> Result<WorkspaceRecord> {
        self.store.workspace(id).await?.ok_or_else(|| not_found(id))
    }

    /// The grace, in milliseconds.
    fn grace_ms(&self) -> i64 {
        super::issuing::millis(self.policy.inbound_grace)
    }

    async fn audit_by(&self, caller: &Caller, action: &'static str, id: &str, outcome: &str) {
        // The id is capped: a refused request may carry any text.
        let id: String = id.chars().take(128).collect();
        let resource = format!("workspace:{id}");
        let event = Event {
            action,
            resource: &resource,
            outcome,
        };
        self.audit.by(caller, event).await;
    }
}

/// The refusal of an id no workspace has.
pub(super) fn not_found(id: &str) -> Error {
    Error::NotFound(format!("workspace {id}"))
}

/// Ids are 1–128 characters of ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit: safe in paths, URLs and logs.
pub(super) fn validate_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "workspace_id",
            format!(
                "1 to {MAX_ID_LEN} ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_id;

    #[test]
    fn workspace_ids_are_validated() {
        for good in ["ws1", "a", "team-a.prod_2", &"x".repeat(128)] {
            assert!(validate_id(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "-ws",
            ".ws",
            "ws/1",
            "ws 1",
            "wś",
            &"x".repeat(129),
            "ws\n",
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// The handlers that hand out a workspace secret refuse a non-admin
    /// caller themselves, whatever the policy table in front of them says.
    #[tokio::test]
    async fn secret_handlers_check_the_caller_themselves() {
        use super::*;
        use crate::domain::{Principal, PrincipalKind};
        use crate::store::SeaStore;

        let db = tessera_tests::TestDatabase::sqlite();
        let store = SeaStore::connect(db.url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let workspaces = Workspaces::new(Arc::new(store), WorkspacePolicy::default());
        let caller = |kind, groups: &[&str]| Caller {
            principal: Principal {
                kind,
                subject: "someone".into(),
                email: String::new(),
                display_name: String::new(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                credential_id: String::new(),
            },
            peer: None,
        };
        let admin = caller(PrincipalKind::Service, &[super::super::ADMIN_GROUP]);
        workspaces
            .provision(&admin, "ws", "")
            .await
            .expect("an admin provisions");
        let outsiders = [
            caller(PrincipalKind::User, &[]),
            caller(PrincipalKind::Workspace, &[]),
            caller(PrincipalKind::Internal, &[super::super::ADMIN_GROUP]),
        ];
        for outsider in &outsiders {
            let read = workspaces.inbound_secret(outsider, "ws").await;
            assert!(
                matches!(read, Err(Error::PermissionDenied(_))),
                "{outsider:?}"
            );
            let made = workspaces.provision(outsider, "ws-2", "").await;
            let rotated = workspaces.rotate_inbound_secret(outsider, "ws", true).await;
            let reissued = workspaces
                .reissue_registration_token(outsider, "ws", true)
                .await;
            let deleted = workspaces.delete(outsider, "ws").await;
            let refused = [made.err(), rotated.err(), reissued.err(), deleted.err()];
            for refusal in refused {
                assert!(
                    matches!(refusal, Some(Error::PermissionDenied(_))),
                    "{outsider:?}: {refusal:?}"
                );
            }
        }
        let read = workspaces.inbound_secret(&admin, "ws").await.expect("read");
        assert!(read.secret.is_some());
    }
}
