//! Conversions between domain types and generated messages.

use prost_types::Timestamp;
use tessera_client::pb;

use crate::domain::{InstallState, Principal, PrincipalKind, TicketIdentity};

/// Unix milliseconds as a protobuf timestamp.
pub(crate) fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        // Below 10^9, so it always fits.
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or_default(),
    }
}

impl From<PrincipalKind> for pb::PrincipalKind {
    fn from(kind: PrincipalKind) -> Self {
        match kind {
            PrincipalKind::Service => pb::PrincipalKind::Service,
            PrincipalKind::Internal => pb::PrincipalKind::Internal,
            PrincipalKind::User => pb::PrincipalKind::User,
            PrincipalKind::Workspace => pb::PrincipalKind::Workspace,
        }
    }
}

impl From<InstallState> for pb::InstallTokenState {
    fn from(state: InstallState) -> Self {
        match state {
            InstallState::NotIssued => pb::InstallTokenState::NotIssued,
            InstallState::Pending => pb::InstallTokenState::Pending,
            InstallState::Consumed => pb::InstallTokenState::Consumed,
        }
    }
}

impl From<Principal> for pb::Principal {
    fn from(principal: Principal) -> Self {
        pb::Principal {
            kind: pb::PrincipalKind::from(principal.kind).into(),
            subject: principal.subject,
            email: principal.email,
            display_name: principal.display_name,
            groups: principal.groups,
            credential_id: principal.credential_id,
        }
    }
}

impl From<TicketIdentity> for pb::TicketIdentity {
    fn from(identity: TicketIdentity) -> Self {
        pb::TicketIdentity {
            user_id: identity.user_id,
            provider: identity.provider,
            minted_at: Some(timestamp(identity.minted_at)),
            internal: identity.internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_become_seconds_and_nanos() {
        assert_eq!(
            timestamp(1_500),
            Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            timestamp(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_000_000
            }
        );
    }
}
