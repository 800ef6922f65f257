//! Test support: a real `tessera` process on an ephemeral port, with a fresh
//! SQLite file or a fresh PostgreSQL database, clients attached, and the
//! helpers the end-to-end tests share.
#![forbid(unsafe_code)]

mod backends;
mod database;
mod process;
mod server;

pub mod audit;
pub mod credentials;
pub mod first_boot;
pub mod fixture;
pub mod forward_calls;
pub mod grpc;
pub mod install;
pub mod metrics;
pub mod peers;
pub mod pki;
pub mod raw;
pub mod runtime;
pub mod secrets;
pub mod sql;
pub mod tickets;
pub mod workspaces;

pub use database::TestDatabase;
pub use process::{
    ServerOptions, ServerProcess, binary, migrate, run_tessera, run_tessera_async, strip_ansi,
};
pub use server::{TestServer, health_at};

pub use grpc::{consume_ticket, mint_ticket};

use tessera_client::tonic::{Code, Status};
use tonic_types::StatusExt;

/// The service most tests call as (see [`ServerOptions::scheduler`]).
pub const SCHEDULER: &str = "SCHEDULER";

/// The name the credential service reports its health under.
pub const CREDENTIAL_SERVICE: &str = "tessera.v1.CredentialService";

/// A 32-character service secret for tests, distinct per `name`.
pub fn service_secret(name: &str) -> String {
    format!("{name:-<12}-0123456789abcdefghij")
}

/// The secret of the `SCHEDULER` service.
pub fn scheduler_secret() -> String {
    service_secret("scheduler")
}

/// Asserts `status` has `code` and, if given, the `ErrorInfo` `reason`.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: Option<&str>) {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let got = error_reason(status);
    if let Some(reason) = reason {
        assert_eq!(
            got.as_deref(),
            Some(reason),
            "unexpected error info in {status:?}"
        );
    }
}

/// The `ErrorInfo` reason of `status`, if it carries one.
pub fn error_reason(status: &Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

/// The fields named by the `BadRequest` detail of `status`.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Seconds since the Unix epoch, as a float (to compare with timestamps).
pub fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Seconds since the Unix epoch of an `Option<prost_types::Timestamp>`
/// response field; panics when it is unset.
#[macro_export]
macro_rules! seconds {
    ($timestamp:expr) => {{
        let ts = $timestamp.as_ref().expect("timestamp is set");
        ts.seconds as f64 + f64::from(ts.nanos) / 1e9
    }};
}
