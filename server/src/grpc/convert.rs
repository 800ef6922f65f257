//! Conversions between domain types and generated messages.

use prost_types::Timestamp;
use tessera_client::pb;

use crate::domain::{Error, InstallState, Listed, Principal, PrincipalKind, TicketIdentity};
use crate::store::{AuditEntry, CredentialKind, CredentialRecord};

/// Unix milliseconds as a protobuf timestamp.
pub(crate) fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        // Below 10^9, so it always fits.
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or_default(),
    }
}

/// Milliseconds as a protobuf duration.
pub(crate) fn duration(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms / 1_000,
        nanos: i32::try_from((ms % 1_000) * 1_000_000).unwrap_or_default(),
    }
}

/// A count for a `uint32` field, saturating.
pub(crate) fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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

impl From<CredentialKind> for pb::CredentialKind {
    fn from(kind: CredentialKind) -> Self {
        match kind {
            CredentialKind::UserAccess => pb::CredentialKind::UserAccess,
            CredentialKind::WorkspaceRegistration => pb::CredentialKind::WorkspaceRegistration,
            CredentialKind::WorkspaceAuth => pb::CredentialKind::WorkspaceAuth,
            CredentialKind::Invite => pb::CredentialKind::Invite,
            CredentialKind::Internal => pb::CredentialKind::Internal,
            CredentialKind::ServiceSecret => pb::CredentialKind::ServiceSecret,
        }
    }
}

/// A request's `CredentialKind` filter: `None` for UNSPECIFIED (every
/// kind), `INVALID_ARGUMENT` for a value this server does not know.
pub(crate) fn credential_kind(value: i32) -> Result<Option<CredentialKind>, Error> {
    let kind = pb::CredentialKind::try_from(value)
        .map_err(|_| Error::invalid("kind", format!("unknown credential kind {value}")))?;
    Ok(match kind {
        pb::CredentialKind::Unspecified => None,
        pb::CredentialKind::UserAccess => Some(CredentialKind::UserAccess),
        pb::CredentialKind::WorkspaceRegistration => Some(CredentialKind::WorkspaceRegistration),
        pb::CredentialKind::WorkspaceAuth => Some(CredentialKind::WorkspaceAuth),
        pb::CredentialKind::Invite => Some(CredentialKind::Invite),
        pb::CredentialKind::Internal => Some(CredentialKind::Internal),
        pb::CredentialKind::ServiceSecret => Some(CredentialKind::ServiceSecret),
    })
}

/// Metadata only: the record's hash is never sent.
impl From<CredentialRecord> for pb::CredentialInfo {
    fn from(record: CredentialRecord) -> Self {
        pb::CredentialInfo {
            credential_id: record.id,
            kind: pb::CredentialKind::from(record.kind).into(),
            subject: record.subject,
            name: record.name,
            created_at: Some(timestamp(record.created_at)),
            created_by: record.created_by,
            expires_at: record.expires_at.map(timestamp),
            last_used_at: record.last_used_at.map(timestamp),
            revoked_at: record.revoked_at.map(timestamp),
            slot: String::new(),
        }
    }
}

impl From<Listed> for pb::CredentialInfo {
    fn from(listed: Listed) -> Self {
        match listed {
            Listed::Stored(record) => record.into(),
            Listed::Service(secret) => pb::CredentialInfo {
                credential_id: secret.credential_id,
                kind: pb::CredentialKind::ServiceSecret.into(),
                subject: secret.email,
                name: secret.name,
                slot: secret.slot.as_str().to_owned(),
                last_used_at: secret.last_used_at.map(timestamp),
                ..Default::default()
            },
        }
    }
}

/// A request's timestamp in Unix milliseconds, rounded up: the store keeps
/// milliseconds, and an entry at millisecond `m` is at or after `t` exactly
/// when `m` is at least `t` rounded up (and before `t` when below it), so
/// inclusive and exclusive bounds both stay exact. `INVALID_ARGUMENT` for
/// nanos outside `0..10^9`.
pub(crate) fn millis_of(field: &'static str, t: &Timestamp) -> Result<i64, Error> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Error::invalid(field, "nanos outside 0..10^9"));
    }
    let nanos = i64::from(t.nanos);
    let millis = nanos / 1_000_000 + i64::from(nanos % 1_000_000 != 0);
    Ok(t.seconds.saturating_mul(1_000).saturating_add(millis))
}

/// Every column of the entry; its texts were escaped when it was written.
impl From<AuditEntry> for pb::AuditEvent {
    fn from(entry: AuditEntry) -> Self {
        let record = entry.record;
        pb::AuditEvent {
            id: entry.id,
            at: Some(timestamp(record.at)),
            actor: record.actor,
            action: record.action,
            resource: record.resource,
            outcome: record.outcome,
            credential_id: record.credential_id,
            peer: record.peer,
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

    #[test]
    fn request_times_round_up_to_the_millisecond() {
        let at = |seconds, nanos| millis_of("since", &Timestamp { seconds, nanos });
        assert_eq!(at(1, 500_000_000).ok(), Some(1_500));
        assert_eq!(at(1, 500_000_001).ok(), Some(1_501));
        assert_eq!(at(-1, 999_999_999).ok(), Some(0));
        assert!(at(1, -1).is_err());
        assert!(at(1, 1_000_000_000).is_err());
    }
}
