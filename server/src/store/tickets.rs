//! The values the store exchanges about tickets: a live ticket, a take of
//! one and its verdict, the tombstone a spent ticket leaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{AuditDraft, AuditRecord};

/// A live ticket, keyed by its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketRecord {
    /// Hex SHA-256 of the ticket.
    pub hash: String,
    /// Identity the ticket is bound to.
    pub user_id: String,
    /// Identity provider of `user_id`.
    pub provider: String,
    /// Purpose the ticket is bound to; empty for none.
    pub purpose: String,
    /// When it was minted.
    pub minted_at: i64,
    /// When it stops being accepted.
    pub expires_at: i64,
}

/// Why a ticket was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketRejection {
    /// Never issued, already used, or reaped.
    Unknown,
    /// Past its expiry time.
    Expired,
    /// Minted for another purpose.
    PurposeMismatch,
    /// Not a well-formed ticket.
    Malformed,
    /// Presented again after it was spent, before it would have expired.
    Replayed,
}

impl TicketRejection {
    /// The outcome recorded in the audit log.
    pub fn outcome(self) -> &'static str {
        match self {
            TicketRejection::Unknown => "TICKET_UNKNOWN",
            TicketRejection::Expired => "TICKET_EXPIRED",
            TicketRejection::PurposeMismatch => "TICKET_PURPOSE_MISMATCH",
            TicketRejection::Malformed => "TICKET_MALFORMED",
            TicketRejection::Replayed => "TICKET_REPLAYED",
        }
    }
}

/// What a taken ticket means for its consumer: the ticket, or why it is
/// refused.
pub type Verdict = std::result::Result<TicketRecord, TicketRejection>;

/// A consumer's attempt at a ticket: the hash of what it presented, what
/// it expects, and the audit entry of the attempt.
#[derive(Clone, Debug)]
pub struct TicketTake {
    /// Hex SHA-256 of the presented ticket.
    pub hash: String,
    /// The purpose the consumer expects; empty for none.
    pub purpose: String,
    /// The time the ticket is judged at.
    pub now: i64,
    /// The attempt's audit entry; its outcome comes from the verdict.
    pub audit: AuditDraft,
    /// Whether its caller still waits for the answer.
    pub caller: CallerWaiting,
}

/// Whether the caller of a take still waits for its answer. A take whose
/// caller has gone (its deadline passed, it cancelled) while it waited for
/// the database must not spend the ticket: that caller would never learn
/// it was consumed.
#[derive(Clone, Debug, Default)]
pub struct CallerWaiting(Arc<AtomicBool>);

impl CallerWaiting {
    /// True once the caller has stopped waiting.
    pub fn is_gone(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// A guard that marks the caller gone when dropped before
    /// [`GoneOnDrop::answered`]: held across the wait for the answer, it is
    /// dropped early exactly when the caller's future is.
    pub fn gone_on_drop(&self) -> GoneOnDrop {
        GoneOnDrop(Some(self.0.clone()))
    }
}

/// See [`CallerWaiting::gone_on_drop`].
#[derive(Debug)]
pub struct GoneOnDrop(Option<Arc<AtomicBool>>);

impl GoneOnDrop {
    /// The caller got its answer.
    pub fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for GoneOnDrop {
    fn drop(&mut self) {
        if let Some(gone) = self.0.take() {
            gone.store(true, Ordering::SeqCst);
        }
    }
}

/// The tombstone of a spent ticket: who spent it, from where, and until
/// when a second presentation counts as a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentTicket {
    /// Hex SHA-256 of the ticket.
    pub hash: String,
    /// When it was spent.
    pub spent_at: i64,
    /// Public id of the credential that spent it.
    pub spent_by: String,
    /// Address of that caller.
    pub peer: String,
    /// When the ticket would have expired; the tombstone goes then.
    pub expires_at: i64,
}

/// What a take found under its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// The live ticket, which this take has just deleted.
    Live(TicketRecord),
    /// The tombstone of a ticket spent before.
    Spent(SpentTicket),
    /// Nothing: never issued, or reaped.
    Nothing,
}

impl TicketTake {
    /// The verdict on what this take found. A pure function, called once
    /// per take inside the transaction that deletes the row, so the audit
    /// entry and the consumer's answer always agree.
    pub fn judge(&self, found: &Found) -> Verdict {
        let record = match found {
            Found::Live(record) => record,
            Found::Spent(spent) if spent.expires_at > self.now => {
                return Err(TicketRejection::Replayed);
            }
            Found::Spent(_) | Found::Nothing => return Err(TicketRejection::Unknown),
        };
        if record.expires_at <= self.now {
            return Err(TicketRejection::Expired);
        }
        if record.purpose != self.purpose {
            return Err(TicketRejection::PurposeMismatch);
        }
        Ok(record.clone())
    }

    /// The tombstone this take leaves when it spent a live ticket that had
    /// not expired (consumed, or refused for its purpose).
    pub fn tombstone(&self, found: &Found) -> Option<SpentTicket> {
        let Found::Live(record) = found else {
            return None;
        };
        (record.expires_at > self.now).then(|| SpentTicket {
            hash: record.hash.clone(),
            spent_at: self.now,
            spent_by: self.audit.credential_id.clone(),
            peer: self.audit.peer.clone(),
            expires_at: record.expires_at,
        })
    }

    /// The audit entry of this take, given what it found and its verdict;
    /// a replay names the first consumer and its address.
    pub fn audit_entry(&self, found: &Found, verdict: &Verdict) -> AuditRecord {
        match (verdict, found) {
            (Ok(_), _) => self.audit.with_outcome("ok"),
            (Err(TicketRejection::Replayed), Found::Spent(first)) => {
                let outcome = format!(
                    "{} (first consumed by {} from {})",
                    TicketRejection::Replayed.outcome(),
                    first.spent_by,
                    first.peer
                );
                self.audit.with_outcome(&outcome)
            }
            (Err(rejection), _) => self.audit.with_outcome(rejection.outcome()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(now: i64) -> TicketTake {
        TicketTake {
            hash: "h".into(),
            purpose: String::new(),
            now,
            audit: AuditDraft {
                at: now,
                actor: "svc@system.local".into(),
                action: "ticket.consume".into(),
                resource: "tkt".into(),
                credential_id: "svc_1".into(),
                peer: "127.0.0.1:1".into(),
            },
            caller: CallerWaiting::default(),
        }
    }

    fn live(expires_at: i64) -> Found {
        Found::Live(TicketRecord {
            hash: "h".into(),
            user_id: "u".into(),
            provider: "p".into(),
            purpose: String::new(),
            minted_at: 0,
            expires_at,
        })
    }

    /// A replay is told apart until the ticket would have expired; then
    /// its tombstone counts for nothing. An expired ticket leaves none.
    #[test]
    fn tombstones_tell_replays_apart_until_the_ticket_would_have_expired() {
        let first = take(10);
        let tombstone = first.tombstone(&live(100)).expect("a tombstone");
        assert_eq!(
            (tombstone.spent_by.as_str(), tombstone.expires_at),
            ("svc_1", 100)
        );
        let spent = Found::Spent(tombstone);
        assert_eq!(take(50).judge(&spent), Err(TicketRejection::Replayed));
        assert_eq!(take(100).judge(&spent), Err(TicketRejection::Unknown));
        let audit = take(50).audit_entry(&spent, &Err(TicketRejection::Replayed));
        assert_eq!(
            audit.outcome,
            "TICKET_REPLAYED (first consumed by svc_1 from 127.0.0.1:1)"
        );
        assert_eq!(
            take(200).tombstone(&live(100)),
            None,
            "expired: no tombstone"
        );
        assert_eq!(
            take(10).judge(&Found::Nothing),
            Err(TicketRejection::Unknown)
        );
    }
}
