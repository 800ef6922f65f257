//! Who is calling: the result of authenticating a bearer.

use std::net::SocketAddr;

use tessera_client::token::{self, TokenKind};

use super::error::{Error, Result};
use crate::store::{UserRecord, WorkspaceRecord};

/// Subject, user id and provider of the internal principal.
pub(super) const INTERNAL_SUBJECT: &str = "server-internal";

/// Name of the group whose members may administer Tessera.
pub(crate) const ADMIN_GROUP: &str = "Admin";

/// The kind of an authenticated principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An in-cluster service, by a `TESSERA_SERVICE_TOKEN_<NAME>` secret.
    Service,
    /// A server-spawned child, by the internal credential.
    Internal,
    /// A person, by a user access token.
    User,
    /// A workspace runtime, by its auth token.
    Workspace,
}

/// An authenticated principal. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// What kind of credential authenticated it.
    pub kind: PrincipalKind,
    /// User id, workspace id, or `server-internal`.
    pub subject: String,
    /// E-mail of the user; empty for workspaces and the internal principal.
    pub email: String,
    /// Name for display.
    pub display_name: String,
    /// Group names.
    pub groups: Vec<String>,
    /// Public id of the credential presented.
    pub credential_id: String,
}

impl Principal {
    /// The `USER` principal of a human's access token `bearer`.
    pub fn user(user: UserRecord, bearer: &str) -> Self {
        Self::user_by(
            user,
            token::credential_id(TokenKind::UserAccess.tag(), bearer),
        )
    }

    /// The `USER` principal of `user`, named by the public id of the
    /// credential that concerns it (a new access token, an invite).
    pub fn user_by(user: UserRecord, credential_id: String) -> Self {
        Self {
            kind: PrincipalKind::User,
            subject: user.id,
            email: user.email,
            display_name: user.display_name,
            groups: user.groups,
            credential_id,
        }
    }

    /// The `WORKSPACE` principal of a workspace token (registration or
    /// auth token) whose public id is `credential_id`.
    pub fn workspace(workspace: WorkspaceRecord, credential_id: String) -> Self {
        Self {
            kind: PrincipalKind::Workspace,
            subject: workspace.id,
            email: String::new(),
            display_name: workspace.name,
            groups: Vec::new(),
            credential_id,
        }
    }

    /// The `INTERNAL` principal of the internal credential whose public id
    /// is `credential_id`.
    pub fn internal(credential_id: String) -> Self {
        Self {
            kind: PrincipalKind::Internal,
            subject: INTERNAL_SUBJECT.to_owned(),
            email: String::new(),
            display_name: "Server internal".to_owned(),
            groups: Vec::new(),
            credential_id,
        }
    }

    /// True for members of the `Admin` group.
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|group| group == ADMIN_GROUP)
    }

    /// The name recorded as the actor in the audit log.
    pub fn actor(&self) -> &str {
        if self.email.is_empty() {
            &self.subject
        } else {
            &self.email
        }
    }
}

/// An authenticated request's principal and where it came from.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// Remote address, when the transport knows it. Kept as an address and
    /// written out only for an audit entry: most calls write none.
    pub peer: Option<SocketAddr>,
}

impl Caller {
    /// Refuses a caller that is not a member of `Admin` (a `SERVICE` or a
    /// `USER`). The policy table admits only those already; the handlers
    /// that hand out a secret check again, so that a mistake in the table
    /// cannot leak one.
    pub(crate) fn require_admin(&self) -> Result<()> {
        let principal = &self.principal;
        let kind_may = matches!(principal.kind, PrincipalKind::Service | PrincipalKind::User);
        if kind_may && principal.is_admin() {
            Ok(())
        } else {
            Err(Error::PermissionDenied(
                "only members of Admin may call this".into(),
            ))
        }
    }
}

#[cfg(test)]
impl Caller {
    /// A `SERVICE` caller in `Admin`, for unit tests.
    pub(crate) fn test_service() -> Self {
        let principal = Principal {
            kind: PrincipalKind::Service,
            subject: "svc".into(),
            email: "svc@system.local".into(),
            display_name: "Svc".into(),
            groups: vec![ADMIN_GROUP.into()],
            credential_id: "svc_0".into(),
        };
        Self {
            principal,
            peer: None,
        }
    }
}
