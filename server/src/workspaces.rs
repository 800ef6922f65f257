//! Workspaces: the platform provisions them, their runtimes register.

use std::sync::Arc;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::principal::{Principal, PrincipalKind};
use crate::store::{AuthTokenChange, Store, WorkspaceRecord};
use crate::validate;

/// Longest workspace id accepted.
const MAX_ID_LEN: usize = 128;

/// What ProvisionWorkspace hands back, once.
#[derive(Debug)]
pub struct Provisioned {
    /// The new workspace's id.
    pub workspace_id: String,
    /// For the runtime's environment; valid for re-registration.
    pub registration_token: Secret,
    /// What the platform presents on its calls to the workspace.
    pub inbound_secret: Secret,
}

/// What RegisterWorkspace hands back.
#[derive(Debug)]
pub struct Registration {
    /// A new auth token: on first registration or when re-issued.
    pub auth_token: Option<Secret>,
    /// The inbound secret; `None` for legacy workspaces.
    pub inbound_secret: Option<Secret>,
    /// Time of this registration.
    pub registered_at: i64,
    /// True when an existing auth token was replaced.
    pub rotated: bool,
}

/// Workspace operations over a store.
#[derive(Clone)]
pub struct Workspaces {
    store: Arc<dyn Store>,
}

impl Workspaces {
    /// Operations on `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Creates workspace `id` with a fresh inbound secret and registration token.
    pub async fn provision(&self, id: &str, name: &str) -> Result<Provisioned> {
        validate_id(id)?;
        validate::display_name("name", name)?;
        let registration_token = token::try_generate(TokenKind::WorkspaceRegistration)?;
        let inbound_secret = token::try_generate(TokenKind::WorkspaceInbound)?;
        let record = WorkspaceRecord {
            id: id.to_owned(),
            name: if name.is_empty() { id } else { name }.to_owned(),
            inbound_secret: Some(inbound_secret.clone()),
            registration_hash: token::sha256_hex(registration_token.expose()),
            auth_hash: None,
            created_at: now_ms(),
            registered_at: None,
            last_registered_at: None,
        };
        if !self.store.insert_workspace(&record).await? {
            return Err(Error::AlreadyExists(format!("workspace {id}")));
        }
        Ok(Provisioned {
            workspace_id: id.to_owned(),
            registration_token,
            inbound_secret,
        })
    }

    /// Registers the runtime of `workspace_id`, authenticated as `caller`
    /// (that workspace's registration or auth token).
    pub async fn register(
        &self,
        caller: &Principal,
        workspace_id: &str,
        reissue_auth_token: bool,
    ) -> Result<Registration> {
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
        let now = now_ms();
        let rotating = reissue_auth_token && workspace.auth_hash.is_some();
        let new_token = if reissue_auth_token || workspace.auth_hash.is_none() {
            Some(token::try_generate(TokenKind::WorkspaceAuth)?)
        } else {
            None
        };
        let hash = new_token.as_ref().map(|t| token::sha256_hex(t.expose()));
        let change = match (&hash, reissue_auth_token) {
            (None, _) => AuthTokenChange::Keep,
            (Some(hash), true) => AuthTokenChange::Replace {
                new: hash,
                current: workspace.auth_hash.as_deref(),
            },
            (Some(hash), false) => AuthTokenChange::SetIfNone(hash),
        };
        let written = self
            .store
            .record_registration(workspace_id, now, change)
            .await?;
        Ok(Registration {
            auth_token: new_token.filter(|_| written),
            inbound_secret: workspace.inbound_secret,
            registered_at: now,
            rotated: rotating && written,
        })
    }

    /// The inbound secret of `workspace_id` (`None` for legacy workspaces).
    pub async fn inbound_secret(&self, workspace_id: &str) -> Result<Option<Secret>> {
        validate_id(workspace_id)?;
        let workspace = self
            .store
            .workspace(workspace_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("workspace {workspace_id}")))?;
        Ok(workspace.inbound_secret)
    }

    /// The workspace a registration or auth token belongs to, as the
    /// principal RegisterWorkspace admits.
    pub async fn registrant(&self, bearer: &str) -> Result<Principal> {
        let kind = token::parse(bearer).map_err(|_| Error::Unauthenticated("malformed bearer"))?;
        let hash = token::sha256_hex(bearer);
        let workspace = match kind {
            TokenKind::WorkspaceRegistration => self.store.workspace_by_registration(&hash).await?,
            TokenKind::WorkspaceAuth => self.store.workspace_by_auth(&hash).await?,
            _ => return Err(Error::Unauthenticated("not a workspace credential")),
        };
        let workspace = workspace.ok_or(Error::Unauthenticated("unknown workspace credential"))?;
        Ok(principal(workspace, kind, bearer))
    }

    /// The `WORKSPACE` principal of an auth token, for VerifyBearer.
    pub async fn by_auth_token(&self, bearer: &str) -> Result<Option<Principal>> {
        let hash = token::sha256_hex(bearer);
        Ok(self
            .store
            .workspace_by_auth(&hash)
            .await?
            .map(|workspace| principal(workspace, TokenKind::WorkspaceAuth, bearer)))
    }
}

fn principal(workspace: WorkspaceRecord, kind: TokenKind, bearer: &str) -> Principal {
    Principal {
        kind: PrincipalKind::Workspace,
        subject: workspace.id,
        email: String::new(),
        display_name: workspace.name,
        groups: Vec::new(),
        credential_id: token::credential_id(kind.tag(), bearer),
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
}
