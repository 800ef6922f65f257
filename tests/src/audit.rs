//! The audit table, read back from the database and through
//! ListAuditEvents.

use sea_orm::DatabaseConnection;
use tessera_client::Client;
use tessera_client::pb;
use tessera_client::tonic::Status;

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

/// ListAuditEvents.
pub async fn list_audit_events(
    client: &mut Client,
    request: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, Status> {
    Ok(client.list_audit_events(request).await?.into_inner())
}

/// Every page of ListAuditEvents with `request`'s filters, `page_size` at
/// a time, in order.
pub async fn list_all_audit_events(
    client: &mut Client,
    mut request: pb::ListAuditEventsRequest,
) -> Result<Vec<pb::AuditEvent>, Status> {
    let mut all = Vec::new();
    loop {
        let page = list_audit_events(client, request.clone()).await?;
        all.extend(page.events);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        request.page_token = page.next_page_token;
    }
}

/// Every text field of `event`, for checking that no secret reached any.
pub fn event_values(event: &pb::AuditEvent) -> [&str; 6] {
    [
        &event.actor,
        &event.action,
        &event.resource,
        &event.outcome,
        &event.credential_id,
        &event.peer,
    ]
}

/// How many audit entries record a failed caller authentication.
pub async fn failed_authentications(db: &crate::TestDatabase) -> i64 {
    let sql = "SELECT COUNT(*) FROM audit_log WHERE action = 'caller.authenticate'";
    crate::sql::count(&db.connect().await, sql).await
}
