//! Test support: a real `tessera` process on an ephemeral port, with a fresh
//! SQLite file or a fresh PostgreSQL database, and clients attached.
#![forbid(unsafe_code)]

mod database;
mod server;

pub mod raw;

pub use database::TestDatabase;
pub use server::{ServerOptions, TestServer, binary, run_tessera};

use tessera_client::tonic::{Code, Status};
use tonic_types::StatusExt;

/// A 32-character service secret for tests, distinct per `name`.
pub fn service_secret(name: &str) -> String {
    format!("{name:-<12}-0123456789abcdefghij")
}

/// Asserts `status` has `code` and, if given, the `ErrorInfo` `reason`.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: Option<&str>) {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let details = status.get_error_details();
    let got = details.error_info().map(|info| info.reason.as_str());
    if let Some(reason) = reason {
        assert_eq!(got, Some(reason), "unexpected error info in {status:?}");
    }
}
