//! Workspaces: the platform provisions them, their runtimes register.

use std::sync::Arc;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::audit::{self, Auditor, Event, OK};
use super::credentials;
use super::error::{Error, Result};
use super::principal::{Caller, PrincipalKind};
use super::validate;
use crate::metrics;
use crate::store::{AuthTokenChange, CredentialKind, Store, WorkspaceRecord};

/// Counter of workspace events.
const WORKSPACES: &str = "tessera_workspace_events_total";

/// Longest workspace id accepted.
const MAX_ID_LEN: usize = 128;

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

/// What RegisterWorkspace hands back.
#[derive(Debug)]
pub(crate) struct Registration {
    /// A new auth token: on first registration or when re-issued.
    pub(crate) auth_token: Option<Secret>,
    /// The inbound secret; `None` for legacy workspaces.
    pub(crate) inbound_secret: Option<Secret>,
    /// Time of this registration.
    pub(crate) registered_at: i64,
    /// True when an existing auth token was replaced.
    rotated: bool,
}

/// The workspace RPCs.
pub(crate) struct Workspaces {
    store: Arc<dyn Store>,
    audit: Auditor,
}

impl Workspaces {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            audit: Auditor::new(store.clone()),
            store,
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

    /// RegisterWorkspace: registers the runtime of `workspace_id`,
    /// authenticated by that workspace's registration or auth token;
    /// audited as a registration, and as a rotation when it replaced the
    /// auth token.
    pub(crate) async fn register(
        &self,
        caller: &Caller,
        workspace_id: &str,
        reissue_auth_token: bool,
    ) -> Result<Registration> {
        let result = self
            .register_runtime(caller, workspace_id, reissue_auth_token)
            .await;
        let outcome = audit::outcome(&result);
        if result.is_ok() {
            metrics::event(WORKSPACES, "registered");
        }
        self.audit_by(caller, "workspace.register", workspace_id, outcome)
            .await;
        if matches!(&result, Ok(registration) if registration.rotated) {
            metrics::event(WORKSPACES, "auth_token_rotated");
            self.audit_by(caller, "workspace.rotate_auth_token", workspace_id, outcome)
                .await;
        }
        result
    }

    async fn register_runtime(
        &self,
        caller: &Caller,
        workspace_id: &str,
        reissue_auth_token: bool,
    ) -> Result<Registration> {
        let actor = caller.principal.actor();
        let caller = &caller.principal;
        validate_id(workspace_id)?;
        if caller.kind != PrincipalKind::Workspace || caller.subject != workspace_id {
            return Err(Error::PermissionDenied(
                "the bearer belongs to another workspace".into(),
            ));
        }
        let workspace = self
            .store
            .workspace(workspace_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("workspace {workspace_id}")))?;
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
        let bearer = &caller.credential_id;
        let recorded = self
            .store
            .record_registration(workspace_id, now, bearer, change);
        let written = recorded
            .await?
            .ok_or(Error::Unauthenticated("revoked credential"))?;
        Ok(Registration {
            auth_token: new_token.filter(|_| written).map(|new| new.secret),
            inbound_secret: workspace.inbound_secret,
            registered_at: now,
            rotated: rotating && written,
        })
    }

    /// GetInboundSecret: the inbound secret of `workspace_id` (`None` for
    /// legacy workspaces), for an Admin member; every read is audited.
    pub(crate) async fn inbound_secret(
        &self,
        caller: &Caller,
        workspace_id: &str,
    ) -> Result<Option<Secret>> {
        let result = self.read_inbound_secret(caller, workspace_id).await;
        let outcome = audit::outcome(&result);
        self.audit_by(
            caller,
            "workspace.read_inbound_secret",
            workspace_id,
            outcome,
        )
        .await;
        result
    }

    async fn read_inbound_secret(
        &self,
        caller: &Caller,
        workspace_id: &str,
    ) -> Result<Option<Secret>> {
        caller.require_admin()?;
        validate_id(workspace_id)?;
        let workspace = self
            .store
            .workspace(workspace_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("workspace {workspace_id}")))?;
        Ok(workspace.inbound_secret)
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

/// Ids are 1–128 characters of ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit: safe in paths, URLs and logs.
fn validate_id(id: &str) -> Result<()> {
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
        use crate::domain::Principal;
        use crate::store::SeaStore;

        let db = tessera_tests::TestDatabase::sqlite();
        let store = SeaStore::connect(db.url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let workspaces = Workspaces::new(Arc::new(store));
        let caller = |kind, groups: &[&str]| Caller {
            principal: Principal {
                kind,
                subject: "someone".into(),
                email: String::new(),
                display_name: String::new(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                credential_id: String::new(),
            },
            peer: String::new(),
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
            assert!(
                matches!(made, Err(Error::PermissionDenied(_))),
                "{outsider:?}"
            );
        }
        let read = workspaces.inbound_secret(&admin, "ws").await.expect("read");
        assert!(read.is_some());
    }
}
