//! Reading the audit log back: which entries a listing selects, and an
//! entry with its position in the log.

use super::AuditRecord;

/// Which audit entries a listing returns, and from where: newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries by this actor (as stored: escaped); `None`: any.
    pub actor: Option<String>,
    /// Only entries presenting this credential id; `None`: any.
    pub credential_id: Option<String>,
    /// Only this action; `None`: any.
    pub action: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<i64>,
    /// Only entries before this time.
    pub until: Option<i64>,
    /// Only entries before this `(at, id)`, in that order.
    pub before: Option<(i64, i64)>,
    /// At most this many.
    pub limit: u64,
}

/// A stored audit entry and its position in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its row id: later appends have larger ones.
    pub id: i64,
    /// What it records.
    pub record: AuditRecord,
}
