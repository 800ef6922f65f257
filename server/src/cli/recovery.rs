//! Operator commands on credentials and users, working on the database
//! directly (also while servers run on it): the recovery path when no
//! admin token works.

use std::sync::Arc;

use super::args::{AccessTokenAction, CredentialsAction, UsersAction};
use super::operator::{open, rfc3339, write_stdout};
use crate::config::DatabaseArgs;
use crate::domain::{BannerSink, Tessera};
use crate::store::{CredentialRecord, SeaStore, Store};

/// `tessera access-token create`.
pub(crate) async fn access_token(
    action: AccessTokenAction,
    database: &DatabaseArgs,
) -> Result<(), String> {
    let AccessTokenAction::Create { email, name, ttl } = action;
    with_app(database, async |app| {
        let created = app.recovery.create_access_token(&email, &name, ttl).await;
        let (token, record) = created.map_err(|err| err.to_string())?;
        eprintln!(
            "access token {} for {email}, expires {}",
            record.id,
            rfc3339(record.expires_at)
        );
        write_stdout(token.expose())
    })
    .await
}

/// `tessera credentials list|revoke`.
pub(crate) async fn credentials(
    action: CredentialsAction,
    database: &DatabaseArgs,
) -> Result<(), String> {
    with_app(database, async |app| match action {
        CredentialsAction::List {
            subject,
            include_revoked,
            include_expired,
        } => {
            let listed = app.recovery.list(subject, include_revoked, include_expired);
            let records = listed.await.map_err(|err| err.to_string())?;
            write_stdout(&table(&records))
        }
        CredentialsAction::Revoke { id } => {
            let revoked = app
                .recovery
                .revoke(&id)
                .await
                .map_err(|err| err.to_string())?;
            write_stdout(&format!("{id} revoked at {}", rfc3339(revoked.revoked_at)))
        }
    })
    .await
}

/// `tessera users enable`.
pub(crate) async fn users(action: UsersAction, database: &DatabaseArgs) -> Result<(), String> {
    let UsersAction::Enable { email } = action;
    with_app(database, async |app| {
        let enabled = app.recovery.enable_user(&email).await;
        match enabled.map_err(|err| err.to_string())? {
            true => write_stdout(&format!("{email} enabled")),
            false => write_stdout(&format!("{email} was not disabled")),
        }
    })
    .await
}

/// Runs `command` on the domain over the database, and closes it.
async fn with_app(
    database: &DatabaseArgs,
    command: impl AsyncFnOnce(&Tessera) -> Result<(), String>,
) -> Result<(), String> {
    let sea: SeaStore = open(database).await?;
    let store: Arc<dyn Store> = Arc::new(sea.clone());
    let app = Tessera::offline(store, BannerSink::stdout());
    let result = command(&app).await;
    sea.close().await;
    result
}

/// The records as an aligned table, a header first.
fn table(records: &[CredentialRecord]) -> String {
    let header = [
        "ID",
        "KIND",
        "SUBJECT",
        "NAME",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "REVOKED",
    ];
    let mut rows = vec![header.map(str::to_owned)];
    for record in records {
        rows.push([
            record.id.clone(),
            record.kind.as_str().to_owned(),
            record.subject.clone(),
            record.name.clone(),
            rfc3339(Some(record.created_at)),
            rfc3339(record.expires_at),
            rfc3339(record.last_used_at),
            rfc3339(record.revoked_at),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells = row.iter().zip(&widths);
            let line: Vec<String> = cells
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect();
            line.join("  ").trim_end().to_owned()
        })
        .collect();
    lines.join("\n")
}
