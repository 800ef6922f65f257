//! ListAuditEvents: members of `Admin` read the audit log back, newest
//! first, a page at a time. Reading it is not itself audited: an audit
//! view polling the log would otherwise fill it with its own reads (a
//! refused read is, like every refusal of the auth layer).

use std::sync::Arc;

use super::error::{Error, Result};
use super::page_token::{self, PageToken};
use super::principal::Caller;
use super::{text, validate};
use crate::store::{AuditEntry, AuditQuery, Store};

/// Events per page when the caller asks for no size.
const DEFAULT_PAGE_SIZE: u32 = 100;
/// Most events per page.
const MAX_PAGE_SIZE: u32 = 1_000;
/// Longest filter text accepted, in bytes.
const MAX_FILTER_LEN: usize = 256;

/// What ListAuditEvents asks for.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuditFilter {
    /// Only events by this actor; empty: any.
    pub actor: String,
    /// Only events presenting this credential id; empty: any.
    pub credential_id: String,
    /// Only this action; empty: any.
    pub action: String,
    /// Only events at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Only events before this time (Unix ms).
    pub until: Option<i64>,
    /// At most this many (0: the default).
    pub page_size: u32,
    /// Where the previous page ended; empty for the first page.
    pub page_token: String,
}

/// One page of audit events.
#[derive(Clone, Debug)]
pub(crate) struct AuditPage {
    /// The entries, newest first.
    pub events: Vec<AuditEntry>,
    /// Where the next page starts; empty when this is the last one.
    pub next_page_token: String,
}

/// ListAuditEvents.
pub(crate) struct AuditEvents {
    store: Arc<dyn Store>,
}

impl AuditEvents {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// A page of the events `filter` selects, newest first.
    pub(crate) async fn list(&self, caller: &Caller, filter: &AuditFilter) -> Result<AuditPage> {
        caller.require_admin()?;
        let limit = match filter.page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        let mut query = query_of(filter)?;
        let scope = scope(caller, filter);
        query.before = match PageToken::decode(&filter.page_token, &scope)? {
            Some((at, id)) => Some((at, id.parse().map_err(|_| page_token::invalid())?)),
            None => None,
        };
        query.limit = u64::from(limit) + 1;
        let mut events = self.store.list_audit(&query).await?;
        let next_page_token = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events
                .last()
                .map(|last| PageToken::encode(&scope, last.record.at, &last.id.to_string()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(AuditPage {
            events,
            next_page_token,
        })
    }
}

/// The store query of `filter`, its texts checked and escaped as the
/// entries' are, so that a filter matches what was recorded.
fn query_of(filter: &AuditFilter) -> Result<AuditQuery> {
    let exact = |field: &'static str, value: &str| -> Result<Option<String>> {
        validate::free_text(field, value, MAX_FILTER_LEN)?;
        Ok((!value.is_empty()).then(|| text::escaped(value).into_owned()))
    };
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && until < since
    {
        return Err(Error::invalid("until", "before since"));
    }
    Ok(AuditQuery {
        actor: exact("actor", &filter.actor)?,
        credential_id: exact("credential_id", &filter.credential_id)?,
        action: exact("action", &filter.action)?,
        since: filter.since,
        until: filter.until,
        before: None,
        limit: 0,
    })
}

/// What a page token of `filter` is bound to.
fn scope(caller: &Caller, filter: &AuditFilter) -> String {
    let time = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_default();
    let (since, until) = (time(filter.since), time(filter.until));
    let filters = [
        filter.actor.as_str(),
        &filter.credential_id,
        &filter.action,
        &since,
        &until,
    ];
    PageToken::scope("audit", &caller.principal.subject, &filters)
}
