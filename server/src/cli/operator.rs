//! Operator commands that work on the database directly, also while a
//! server runs on it: `migrate`, `install-token`, `gen-secret` (and the
//! opening of the database every such command shares).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tessera_client::token::{self, TokenKind};
use zeroize::Zeroizing;

use super::args::InstallTokenAction;
use crate::config::DatabaseArgs;
use crate::domain::{BannerSink, InstallState, OPERATOR, Tessera};
use crate::store::{SeaStore, Store, sealing};

/// `tessera migrate`.
pub(crate) async fn migrate(database: &DatabaseArgs) -> Result<(), String> {
    let store = open(database).await?;
    store.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// `tessera install-token status|regenerate`.
pub(crate) async fn install_token(
    action: InstallTokenAction,
    database: &DatabaseArgs,
) -> Result<(), String> {
    let sea = open(database).await?;
    let store: Arc<dyn Store> = Arc::new(sea.clone());
    let app = Tessera::offline(store, BannerSink::stdout());
    let result = match action {
        InstallTokenAction::Status => {
            let status = app.install.status().await.map_err(|err| err.to_string())?;
            let state = match status.state {
                InstallState::NotIssued => "NOT_ISSUED",
                InstallState::Pending => "PENDING",
                InstallState::Consumed => "CONSUMED",
            };
            write_stdout(&format!(
                "state: {state}\nissued_at: {}\nconsumed_at: {}",
                rfc3339(status.issued_at),
                rfc3339(status.consumed_at)
            ))
        }
        InstallTokenAction::Regenerate => app
            .install
            .regenerate_by(OPERATOR)
            .await
            .map_err(|err| err.to_string()),
    };
    sea.close().await;
    result
}

/// `tessera gen-secret`: 256 bits from the OS CSPRNG, in the token format
/// so secret scanners recognise it; with `--key`, an encryption key in
/// standard base64.
pub(crate) fn gen_secret(key: bool) -> Result<(), String> {
    if key {
        let key = Zeroizing::new(sealing::generate_key().map_err(|err| err.to_string())?);
        return write_stdout(&key);
    }
    let secret = token::try_generate(TokenKind::Service).map_err(|err| err.to_string())?;
    write_stdout(secret.expose())
}

/// Opens and migrates the database, with the configured encryption keys;
/// refuses (as the server does) when they cannot open every stored secret.
pub(super) async fn open(database: &DatabaseArgs) -> Result<SeaStore, String> {
    let url = database.url()?;
    let keys = Arc::new(database.keys()?);
    let store = SeaStore::connect_with_pool(&url, None)
        .await
        .map_err(|err| format!("cannot open the database: {err}"))?;
    store
        .migrate()
        .await
        .map_err(|err| format!("migration failed: {err}"))?;
    let store = store.with_keys(keys);
    if let Err(err) = store.check_keys().await {
        store.close().await;
        return Err(err.to_string());
    }
    Ok(store)
}

pub(super) fn write_stdout(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|err| format!("cannot write to standard output: {err}"))
}

pub(super) fn rfc3339(ms: Option<i64>) -> String {
    match ms.and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        None => "-".to_owned(),
    }
}
