//! Who is calling: the result of authenticating a bearer.

/// Name of the group whose members may administer Tessera.
pub const ADMIN_GROUP: &str = "Admin";

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
pub struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// Remote address, or empty when unknown.
    pub peer: String,
}
