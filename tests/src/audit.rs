//! The audit table, read back.

use sea_orm::DatabaseConnection;

/// One row of `audit_log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// The principal's e-mail, or what stands for a caller without one.
    pub actor: String,
    /// What was done, e.g. `ticket.consume`.
    pub action: String,
    /// What it was done to.
    pub resource: String,
    /// `ok`, or why it failed.
    pub outcome: String,
    /// The public id of the credential used.
    pub credential_id: String,
    /// The caller's address.
    pub peer: String,
}

impl AuditRow {
    /// Every column, for checking that no secret reached any of them.
    pub fn values(&self) -> [&str; 6] {
        [
            &self.actor,
            &self.action,
            &self.resource,
            &self.outcome,
            &self.credential_id,
            &self.peer,
        ]
    }
}

/// Every audit row, oldest first.
pub async fn audit_rows(conn: &DatabaseConnection) -> Vec<AuditRow> {
    let sql = "SELECT actor, action, resource, outcome, credential_id, peer FROM audit_log \
               ORDER BY id";
    crate::sql::strings(conn, sql, 6)
        .await
        .into_iter()
        .map(|row| {
            let [actor, action, resource, outcome, credential_id, peer] =
                <[String; 6]>::try_from(row).expect("six columns");
            AuditRow {
                actor,
                action,
                resource,
                outcome,
                credential_id,
                peer,
            }
        })
        .collect()
}

/// Asserts that none of `secrets` appears in any column of `rows`.
#[track_caller]
pub fn assert_not_in_audit(rows: &[AuditRow], secrets: &[&str]) {
    for row in rows {
        for value in row.values() {
            for secret in secrets {
                assert!(!value.contains(secret), "a secret in audit row {row:?}");
            }
        }
    }
}
