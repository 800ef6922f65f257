//! Single-use tickets bound to an identity and a purpose.

use std::sync::Arc;
use std::time::Duration;

use tessera_client::Secret;
use tessera_client::token::{self, TokenKind};

use super::audit::{Auditor, Event, OK};
use super::error::{Error, Result};
use super::internal_credential::InternalCredentials;
use super::principal::{Caller, INTERNAL_SUBJECT, PrincipalKind};
use super::{text, validate};
use crate::metrics;
use crate::store::{AuditDraft, CallerWaiting, Store, TicketRecord, TicketRejection, TicketTake};

/// Counter of ticket events.
const TICKETS: &str = "tessera_tickets_total";
/// Longest `user_id`, `provider` or `purpose` accepted, in bytes.
const MAX_FIELD_LEN: usize = 256;

/// Ticket lifetime when neither the caller nor `TESSERA_TICKET_TTL` sets one.
pub(crate) const DEFAULT_TTL_SECS: u64 = 30;
/// Longest lifetime a caller may ask for unless `TESSERA_TICKET_MAX_TTL` says otherwise.
pub(crate) const DEFAULT_MAX_TTL_SECS: u64 = 300;

/// Lifetimes of tickets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TicketPolicy {
    /// Lifetime when the caller asks for none (`TESSERA_TICKET_TTL`).
    pub default_ttl: Duration,
    /// Longest lifetime a caller may ask for.
    pub max_ttl: Duration,
}

impl Default for TicketPolicy {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(DEFAULT_TTL_SECS),
            max_ttl: Duration::from_secs(DEFAULT_MAX_TTL_SECS),
        }
    }
}

/// What a caller asks to mint.
#[derive(Clone, Debug)]
pub(crate) struct TicketRequest {
    /// Identity the ticket is bound to.
    pub user_id: String,
    /// Identity provider of `user_id`.
    pub provider: String,
    /// Purpose, or empty.
    pub purpose: String,
    /// Requested lifetime; 0 for the default.
    pub ttl_seconds: u32,
}

/// A freshly minted ticket.
#[derive(Debug)]
pub(crate) struct MintedTicket {
    /// The ticket; returned once, stored only as a hash.
    pub ticket: Secret,
    /// Unix milliseconds after which it is refused.
    pub expires_at: i64,
}

/// The identity a consumed ticket was bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketIdentity {
    /// User id.
    pub user_id: String,
    /// Identity provider.
    pub provider: String,
    /// Unix milliseconds when minted.
    pub minted_at: i64,
    /// True when the internal credential was presented.
    pub internal: bool,
}

/// The `event` label of the ticket counter for a refusal.
fn metric(rejection: TicketRejection) -> &'static str {
    match rejection {
        // An unknown ticket is most often a replay of a consumed one.
        TicketRejection::Unknown => "unknown",
        TicketRejection::Replayed => "replayed",
        TicketRejection::Expired => "expired",
        TicketRejection::PurposeMismatch => "purpose_mismatch",
        TicketRejection::Malformed => "malformed",
    }
}

/// What ConsumeTicket was given, worked out once per call: decoding the
/// token (base58 and its checksum) and hashing it.
struct Presented {
    /// A well-formed token's kind and stored form (its SHA-256, in hex).
    token: Result<(TokenKind, String), token::MalformedToken>,
    /// Its public id, or its first characters when it is malformed: unlike
    /// those (always `tsr_tkt_`), the id tells one ticket from another in
    /// the audit log.
    resource: String,
}

impl Presented {
    fn of(ticket: &str) -> Self {
        match token::parse(ticket) {
            Ok(kind) => {
                let hash = token::sha256_hex(ticket);
                let resource = token::credential_id_from_hex(kind.tag(), &hash);
                Self {
                    token: Ok((kind, hash)),
                    resource,
                }
            }
            Err(err) => Self {
                token: Err(err),
                resource: token::truncated(ticket),
            },
        }
    }
}

/// The ticket RPCs.
pub(crate) struct Tickets {
    store: Arc<dyn Store>,
    policy: TicketPolicy,
    internal: Arc<InternalCredentials>,
    audit: Auditor,
}

impl Tickets {
    /// Tickets kept in `store`, with lifetimes from `policy`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        policy: TicketPolicy,
        internal: Arc<InternalCredentials>,
    ) -> Self {
        Self {
            audit: Auditor::new(store.clone()),
            store,
            policy,
            internal,
        }
    }

    /// MintTicket for `request` on behalf of `caller`; a user may mint only
    /// for itself. The ticket and its audit entry are written in one
    /// transaction.
    pub(crate) async fn mint(
        &self,
        caller: &Caller,
        request: &TicketRequest,
    ) -> Result<MintedTicket> {
        let ttl = self.validate(request)?;
        let principal = &caller.principal;
        if principal.kind == PrincipalKind::User && principal.subject != request.user_id {
            return Err(Error::PermissionDenied(
                "a user may mint tickets only for itself".into(),
            ));
        }
        let ticket = token::try_generate(TokenKind::Ticket)?;
        let minted_at = self.store.now_ms();
        let expires_at =
            minted_at.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let record = TicketRecord {
            hash: token::sha256_hex(ticket.expose()),
            user_id: request.user_id.clone(),
            provider: request.provider.clone(),
            purpose: request.purpose.clone(),
            minted_at,
            expires_at,
        };
        let resource = format!("user:{}/{}", request.provider, request.user_id);
        let event = Event {
            action: "ticket.mint",
            resource: &resource,
            outcome: OK,
        };
        let entry = self.audit.entry_by(caller, event);
        self.store.insert_ticket(&record, Some(&entry)).await?;
        metrics::event(TICKETS, "minted");
        Ok(MintedTicket { ticket, expires_at })
    }

    /// ConsumeTicket: consumes `ticket` exactly once, or accepts the
    /// internal credential without consuming it, and audits the attempt
    /// (in the same transaction as the consumption). A ticket presented
    /// with the wrong purpose is spent all the same: whoever holds it has
    /// misused it. A purpose no ticket can have (too long, unprintable) is
    /// a bad request, refused before the ticket is looked at: it spends
    /// nothing and tells nothing about the ticket.
    pub(crate) async fn consume(
        &self,
        caller: &Caller,
        ticket: &str,
        purpose: &str,
    ) -> Result<TicketIdentity> {
        validate::free_text("purpose", purpose, MAX_FIELD_LEN)?;
        let presented = Presented::of(ticket);
        let audit = self
            .audit
            .draft_by(caller, "ticket.consume", &presented.resource);
        let result = self.take(ticket, &presented, purpose, audit).await;
        match &result {
            Ok(identity) if identity.internal => metrics::event(TICKETS, "internal_accepted"),
            Ok(_) => metrics::event(TICKETS, "consumed"),
            Err(Error::Ticket { reason, .. }) => metrics::event(TICKETS, metric(*reason)),
            Err(_) => {}
        }
        result
    }

    /// A ticket is judged by the store, in the transaction that deletes it
    /// and writes `audit`; anything else presented is judged here.
    async fn take(
        &self,
        ticket: &str,
        presented: &Presented,
        purpose: &str,
        audit: AuditDraft,
    ) -> Result<TicketIdentity> {
        let refuse = |reason| Error::Ticket {
            reason,
            ticket: text::credential_prefix(ticket),
        };
        if let Ok((TokenKind::Ticket, hash)) = &presented.token {
            let take = TicketTake {
                hash: hash.clone(),
                purpose: purpose.to_owned(),
                now: self.store.now_ms(),
                audit,
                caller: CallerWaiting::default(),
            };
            let waiting = take.caller.gone_on_drop();
            let verdict = self.store.take_ticket(&take).await;
            waiting.answered();
            let record = verdict?.map_err(refuse)?;
            return Ok(TicketIdentity {
                user_id: record.user_id,
                provider: record.provider,
                minted_at: record.minted_at,
                internal: false,
            });
        }
        let result = match &presented.token {
            Err(_) => Err(refuse(TicketRejection::Malformed)),
            Ok((TokenKind::Internal, hash)) => match self.internal.check(ticket, hash).await {
                Ok(Some(minted_at)) => Ok(TicketIdentity {
                    user_id: INTERNAL_SUBJECT.to_owned(),
                    provider: INTERNAL_SUBJECT.to_owned(),
                    minted_at,
                    internal: true,
                }),
                Ok(None) => Err(refuse(TicketRejection::Unknown)),
                Err(err) => Err(err.into()),
            },
            Ok(_) => Err(refuse(TicketRejection::Unknown)),
        };
        let outcome = match &result {
            Ok(_) => OK,
            Err(Error::Ticket { reason, .. }) => reason.outcome(),
            Err(_) => "error",
        };
        self.audit.store_entry(audit.with_outcome(outcome)).await;
        result
    }

    /// Deletes expired tickets; returns how many.
    pub(crate) async fn reap(&self) -> Result<u64> {
        let now = self.store.now_ms();
        let delete = |limit| self.store.delete_expired_tickets(now, limit);
        let reaped = crate::store::delete_in_chunks(delete).await?;
        ::metrics::counter!(TICKETS, "event" => "expired_reaped").increment(reaped);
        Ok(reaped)
    }

    fn validate(&self, request: &TicketRequest) -> Result<Duration> {
        for (field, value) in [
            ("user_id", &request.user_id),
            ("provider", &request.provider),
            ("purpose", &request.purpose),
        ] {
            validate::free_text(field, value, MAX_FIELD_LEN)?;
        }
        if request.user_id.is_empty() {
            return Err(Error::invalid("user_id", "must not be empty"));
        }
        if request.provider.is_empty() {
            return Err(Error::invalid("provider", "must not be empty"));
        }
        let ttl = match request.ttl_seconds {
            0 => self.policy.default_ttl,
            seconds => Duration::from_secs(u64::from(seconds)),
        };
        if ttl > self.policy.max_ttl {
            return Err(Error::invalid(
                "ttl_seconds",
                format!("above the maximum of {} s", self.policy.max_ttl.as_secs()),
            ));
        }
        Ok(ttl)
    }
}
