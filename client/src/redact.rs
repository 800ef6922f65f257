//! `Debug` for the generated messages that carry a secret.
//!
//! build.rs tells prost to skip `Debug` for these messages; the impls below
//! print every field, but secret ones as `[redacted]`, so a whole request or
//! response can be logged with `{:?}` without leaking a token. A new field
//! added to one of these messages breaks the build here (every field is named),
//! which forces a decision on whether it is secret.

use std::fmt;

use crate::pb;

/// Stands in for a secret value.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An `InstallTokenState` field, shown by name like prost's own `Debug` does.
struct State(i32);

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match pb::InstallTokenState::try_from(self.0) {
            Ok(state) => state.fmt(f),
            Err(_) => self.0.fmt(f),
        }
    }
}

fn shown<T: fmt::Debug>(value: &T) -> &T {
    value
}

fn secret(_: &str) -> Redacted {
    Redacted
}

// Whether an optional secret is present is useful when debugging and reveals
// nothing, so keep the `Some`/`None`.
fn opt_secret(value: &Option<String>) -> Option<Redacted> {
    value.as_ref().map(|_| Redacted)
}

fn install_state(value: &i32) -> State {
    State(*value)
}

/// `redacted_debug!(Message { field: how, .. })` where `how` is one of the
/// functions above. Destructuring (instead of `self.field`) makes the build
/// fail when the message gains a field that is not listed.
macro_rules! redacted_debug {
    ($($ty:ident { $($field:ident: $how:ident),+ $(,)? })+) => {$(
        impl fmt::Debug for pb::$ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let pb::$ty { $($field),+ } = self;
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &$how($field)))+
                    .finish()
            }
        }
    )+};
}

redacted_debug! {
    VerifyBearerRequest { token: secret }
    MintTicketResponse { ticket: secret, expires_at: shown }
    ConsumeTicketRequest { ticket: secret, purpose: shown }
    GetInternalCredentialResponse { credential: secret }
    IssueInstallTokenResponse { install_token: opt_secret, state: install_state, issued_at: shown }
    ConsumeInstallTokenRequest { install_token: secret, admin_email: shown, admin_name: shown }
    ConsumeInstallTokenResponse { admin: shown, admin_token: secret }
    ProvisionWorkspaceResponse {
        workspace_id: shown,
        registration_token: secret,
        platform_inbound_secret: secret,
    }
    RegisterWorkspaceResponse {
        auth_token: opt_secret,
        platform_inbound_secret: opt_secret,
        registered_at: shown,
        inbound_secret_id: shown,
        next_platform_inbound_secret: opt_secret,
        next_inbound_secret_id: shown,
        previous_platform_inbound_secret: opt_secret,
        previous_valid_until: shown,
        register_again_within: shown,
    }
    GetInboundSecretResponse {
        platform_inbound_secret: opt_secret,
        refresh_before: shown,
        inbound_secret_id: shown,
    }
    ReissueRegistrationTokenResponse { registration_token: secret, credential: shown, revoked: shown }
    CreateAccessTokenResponse { access_token: secret, credential: shown }
    InviteUserResponse { invite_token: secret, user: shown, expires_at: shown }
    AcceptInviteRequest { invite_token: secret, token_name: shown }
    AcceptInviteResponse { user: shown, access_token: secret }
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

    const SECRET: &str = "tsr_tkt_SUPERSECRETVALUE";

    fn some_secret() -> Option<String> {
        Some(SECRET.to_owned())
    }

    fn ts() -> Option<Timestamp> {
        Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 7,
        })
    }

    /// Asserts the secret is absent and every `expected` fragment is present.
    fn check(debug: String, expected: &[&str]) {
        assert!(!debug.contains(SECRET), "secret leaked: {debug}");
        assert!(!debug.contains("SUPERSECRET"), "secret leaked: {debug}");
        for fragment in expected {
            assert!(
                debug.contains(fragment),
                "{fragment:?} missing from {debug}"
            );
        }
    }

    #[test]
    fn secret_fields_are_redacted_and_others_shown() {
        let s = || SECRET.to_owned();
        check(
            format!("{:?}", pb::VerifyBearerRequest { token: s() }),
            &["VerifyBearerRequest { token: [redacted] }"],
        );
        check(
            format!(
                "{:?}",
                pb::MintTicketResponse {
                    ticket: s(),
                    expires_at: ts()
                }
            ),
            &["ticket: [redacted]", "expires_at: Some(", "1700000000"],
        );
        check(
            format!(
                "{:?}",
                pb::ConsumeTicketRequest {
                    ticket: s(),
                    purpose: "ws-upgrade".into()
                }
            ),
            &["ticket: [redacted]", "purpose: \"ws-upgrade\""],
        );
        check(
            format!(
                "{:?}",
                pb::GetInternalCredentialResponse { credential: s() }
            ),
            &["credential: [redacted]"],
        );
        let issued = pb::IssueInstallTokenResponse {
            install_token: some_secret(),
            state: pb::InstallTokenState::Pending as i32,
            issued_at: ts(),
        };
        check(
            format!("{issued:?}"),
            &[
                "install_token: Some([redacted])",
                "state: Pending",
                "issued_at: Some(",
            ],
        );
        let consume = pb::ConsumeInstallTokenRequest {
            install_token: s(),
            admin_email: "root@example.com".into(),
            admin_name: "Root".into(),
        };
        check(
            format!("{consume:?}"),
            &[
                "install_token: [redacted]",
                "\"root@example.com\"",
                "admin_name: \"Root\"",
            ],
        );
        let admin = pb::Principal {
            subject: "user-1".into(),
            credential_id: "cred-1".into(),
            ..Default::default()
        };
        let consumed = pb::ConsumeInstallTokenResponse {
            admin: Some(admin),
            admin_token: s(),
        };
        check(
            format!("{consumed:?}"),
            &[
                "admin: Some(Principal {",
                "\"user-1\"",
                "\"cred-1\"",
                "admin_token: [redacted]",
            ],
        );
        let provisioned = pb::ProvisionWorkspaceResponse {
            workspace_id: "ws-1".into(),
            registration_token: s(),
            platform_inbound_secret: s(),
        };
        check(
            format!("{provisioned:?}"),
            &[
                "workspace_id: \"ws-1\"",
                "registration_token: [redacted]",
                "platform_inbound_secret: [redacted]",
            ],
        );
        let registered = pb::RegisterWorkspaceResponse {
            auth_token: some_secret(),
            platform_inbound_secret: None,
            registered_at: ts(),
            next_platform_inbound_secret: some_secret(),
            next_inbound_secret_id: "wsi_0123456789abcdef".into(),
            previous_platform_inbound_secret: some_secret(),
            previous_valid_until: ts(),
            ..Default::default()
        };
        check(
            format!("{registered:?}"),
            &[
                "auth_token: Some([redacted])",
                "platform_inbound_secret: None",
                "registered_at",
                "next_platform_inbound_secret: Some([redacted])",
                "wsi_0123456789abcdef",
                "previous_platform_inbound_secret: Some([redacted])",
            ],
        );
        check(
            format!(
                "{:?}",
                pb::GetInboundSecretResponse {
                    platform_inbound_secret: some_secret(),
                    refresh_before: ts(),
                    inbound_secret_id: "wsi_0123456789abcdef".into(),
                }
            ),
            &[
                "platform_inbound_secret: Some([redacted])",
                "refresh_before",
                "wsi_0123456789abcdef",
            ],
        );
        check(
            format!(
                "{:?}",
                pb::ReissueRegistrationTokenResponse {
                    registration_token: s(),
                    credential: None,
                    revoked: 2,
                }
            ),
            &["registration_token: [redacted]", "revoked: 2"],
        );
        let credential = pb::CredentialInfo {
            credential_id: "usr_0123456789abcdef".into(),
            ..Default::default()
        };
        check(
            format!(
                "{:?}",
                pb::CreateAccessTokenResponse {
                    access_token: s(),
                    credential: Some(credential),
                }
            ),
            &["access_token: [redacted]", "usr_0123456789abcdef"],
        );
        check(
            format!(
                "{:?}",
                pb::InviteUserResponse {
                    invite_token: s(),
                    user: None,
                    expires_at: ts(),
                }
            ),
            &["invite_token: [redacted]", "1700000000"],
        );
        check(
            format!(
                "{:?}",
                pb::AcceptInviteRequest {
                    invite_token: s(),
                    token_name: "laptop".into(),
                }
            ),
            &["invite_token: [redacted]", "laptop"],
        );
        check(
            format!(
                "{:?}",
                pb::AcceptInviteResponse {
                    user: None,
                    access_token: s(),
                }
            ),
            &["access_token: [redacted]"],
        );
    }

    #[test]
    fn alternate_format_is_redacted_too() {
        let response = pb::ProvisionWorkspaceResponse {
            workspace_id: "ws-1".into(),
            registration_token: SECRET.into(),
            platform_inbound_secret: SECRET.into(),
        };
        check(
            format!("{response:#?}"),
            &["registration_token: [redacted],"],
        );
    }

    #[test]
    fn unknown_state_prints_the_number() {
        let response = pb::IssueInstallTokenResponse {
            state: 42,
            ..Default::default()
        };
        check(
            format!("{response:?}"),
            &["install_token: None", "state: 42", "issued_at: None"],
        );
    }
}
