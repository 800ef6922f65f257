//! Command line and environment: every flag is also an environment variable.
//! `database.rs` holds where the data lives, `serve.rs` the flags of
//! `tessera serve`, `settings.rs` what they are checked and turned into.

mod database;
mod serve;
mod settings;

use std::time::Duration;

use clap::ValueEnum;

pub(crate) use crate::listen::{TlsFiles, TlsSettings};
pub(crate) use database::DatabaseArgs;
pub(crate) use serve::ServeArgs;
pub(crate) use settings::{Limits, Settings};

/// How logs are written (to standard error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// A positive duration: `90d`, `36h`, or plain seconds.
pub(crate) fn parse_lifetime(value: &str) -> Result<Duration, String> {
    let duration = match value.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(value.trim()).map_err(|err| err.to_string())?,
    };
    if duration.is_zero() {
        return Err("must be positive".into());
    }
    Ok(duration)
}

/// `ms` milliseconds, or `None` for 0 (the setting is off).
fn positive_millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}
