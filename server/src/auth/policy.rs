//! Who may call what: the one policy table, applied before any handler runs.
//! A path not in it needs an authenticated caller, so a new RPC is never
//! public by accident.

use crate::domain::{Principal, PrincipalKind};

/// Which callers an RPC admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Anyone, without credentials (health, reflection).
    Public,
    /// Anyone, without credentials, within a per-peer rate.
    Anonymous,
    /// Anyone presenting a one-shot credential in the message (an install
    /// token): the handler judges it, and only its failures are charged and
    /// refused, so others polling from the same address never keep the
    /// right one out.
    Redeem,
    /// `SERVICE` principals.
    Service,
    /// `SERVICE` principals, or a `USER` (the handler restricts it to itself).
    ServiceOrUser,
    /// Members of `Admin`, `SERVICE` or `USER`.
    Admin,
    /// A `USER` (the handler restricts it to itself).
    User,
    /// A `USER` (the handler restricts it to its own), or a member of
    /// `Admin`.
    UserOrAdmin,
    /// A `USER` in `Admin`: never a `SERVICE`, for RPCs whose result
    /// becomes a user credential.
    AdminUser,
    /// A workspace's own registration or auth token.
    Workspace,
    /// Any authenticated principal (paths not in the table).
    Authenticated,
}

const SERVICE: &str = "/tessera.v1.CredentialService/";

/// The table: RPC path → rule. Paths not listed need authentication, so a
/// new RPC is never public by accident.
pub(super) fn rule_for(path: &str) -> Rule {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        return Rule::Public;
    }
    let Some(method) = path.strip_prefix(SERVICE) else {
        return Rule::Authenticated;
    };
    match method {
        "GetInstallTokenStatus" => Rule::Anonymous,
        "ConsumeInstallToken" | "AcceptInvite" => Rule::Redeem,
        "VerifyBearer" | "ConsumeTicket" | "GetInternalCredential" => Rule::Service,
        "MintTicket" => Rule::ServiceOrUser,
        "IssueInstallToken" | "ProvisionWorkspace" | "GetInboundSecret" | "RevokeSubject" => {
            Rule::Admin
        }
        "InviteUser" => Rule::AdminUser,
        "RegisterWorkspace" => Rule::Workspace,
        "CreateAccessToken" => Rule::User,
        "ListCredentials" | "RevokeCredential" => Rule::UserOrAdmin,
        "ListAuditEvents"
        | "RotateInboundSecret"
        | "ReissueRegistrationToken"
        | "DeleteWorkspace" => Rule::Admin,
        _ => Rule::Authenticated,
    }
}

/// Why a known caller that `rule` does not admit is refused.
pub(super) fn denial(rule: Rule) -> &'static str {
    match rule {
        Rule::AdminUser => {
            "only a user in Admin may call this: a service never causes a user credential to exist"
        }
        Rule::User => "only a user may call this, for itself",
        _ => "caller may not call this method",
    }
}

/// True when `principal` satisfies `rule`.
pub(super) fn allows(rule: Rule, principal: &Principal) -> bool {
    let kind = principal.kind;
    match rule {
        Rule::Public | Rule::Anonymous | Rule::Redeem | Rule::Authenticated => true,
        Rule::Service => kind == PrincipalKind::Service,
        Rule::ServiceOrUser => matches!(kind, PrincipalKind::Service | PrincipalKind::User),
        Rule::Admin => {
            matches!(kind, PrincipalKind::Service | PrincipalKind::User) && principal.is_admin()
        }
        Rule::User => kind == PrincipalKind::User,
        Rule::UserOrAdmin => allows(Rule::User, principal) || allows(Rule::Admin, principal),
        Rule::AdminUser => kind == PrincipalKind::User && principal.is_admin(),
        Rule::Workspace => kind == PrincipalKind::Workspace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ADMIN_GROUP;

    fn principal(kind: PrincipalKind, admin: bool) -> Principal {
        Principal {
            kind,
            subject: "s".into(),
            email: String::new(),
            display_name: String::new(),
            groups: if admin {
                vec![ADMIN_GROUP.into()]
            } else {
                vec![]
            },
            credential_id: String::new(),
        }
    }

    #[test]
    fn table_matches_the_spec() {
        let rpc = |m: &str| rule_for(&format!("{SERVICE}{m}"));
        assert_eq!(rpc("VerifyBearer"), Rule::Service);
        assert_eq!(rpc("ConsumeTicket"), Rule::Service);
        assert_eq!(rpc("GetInternalCredential"), Rule::Service);
        assert_eq!(rpc("MintTicket"), Rule::ServiceOrUser);
        assert_eq!(rpc("IssueInstallToken"), Rule::Admin);
        assert_eq!(rpc("ProvisionWorkspace"), Rule::Admin);
        assert_eq!(rpc("GetInboundSecret"), Rule::Admin);
        assert_eq!(rpc("GetInstallTokenStatus"), Rule::Anonymous);
        assert_eq!(rpc("ConsumeInstallToken"), Rule::Redeem);
        assert_eq!(rpc("RegisterWorkspace"), Rule::Workspace);
        assert_eq!(rpc("CreateAccessToken"), Rule::User);
        assert_eq!(rpc("ListCredentials"), Rule::UserOrAdmin);
        assert_eq!(rpc("RevokeCredential"), Rule::UserOrAdmin);
        assert_eq!(rpc("RevokeSubject"), Rule::Admin);
        assert_eq!(rpc("InviteUser"), Rule::AdminUser);
        assert_eq!(rpc("AcceptInvite"), Rule::Redeem);
        assert_eq!(rpc("ListAuditEvents"), Rule::Admin);
        assert_eq!(rpc("Unknown"), Rule::Authenticated);
        assert_eq!(rule_for("/grpc.health.v1.Health/Check"), Rule::Public);
        assert_eq!(rule_for("/other.Service/Call"), Rule::Authenticated);
    }

    #[test]
    fn kinds_and_groups_are_enforced() {
        let service = principal(PrincipalKind::Service, true);
        let user = principal(PrincipalKind::User, false);
        let admin_user = principal(PrincipalKind::User, true);
        let internal = principal(PrincipalKind::Internal, false);
        assert!(allows(Rule::Service, &service));
        assert!(!allows(Rule::Service, &user));
        assert!(!allows(Rule::Service, &internal));
        assert!(allows(Rule::ServiceOrUser, &user));
        assert!(!allows(Rule::ServiceOrUser, &internal));
        assert!(allows(Rule::Admin, &admin_user));
        assert!(!allows(Rule::Admin, &user));
        assert!(!allows(Rule::Workspace, &service));
        assert!(allows(Rule::User, &user));
        assert!(!allows(Rule::User, &service));
        assert!(allows(Rule::UserOrAdmin, &user));
        assert!(allows(Rule::UserOrAdmin, &service));
        let plain_service = principal(PrincipalKind::Service, false);
        assert!(!allows(Rule::UserOrAdmin, &plain_service));
        assert!(!allows(Rule::UserOrAdmin, &internal));
        assert!(allows(Rule::AdminUser, &admin_user));
        assert!(
            !allows(Rule::AdminUser, &service),
            "a service never invites"
        );
        assert!(!allows(Rule::AdminUser, &user));
    }
}
