//! Test support: a real `tessera` process on an ephemeral port, with a fresh
//! SQLite file or a fresh PostgreSQL database, and clients attached.
#![forbid(unsafe_code)]

mod database;
mod server;

pub mod raw;

pub use database::TestDatabase;
pub use server::{ServerOptions, TestServer, binary, run_tessera};

use tessera_client::Client;
use tessera_client::pb;
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

/// MintTicket for (`user_id`, `github`) with `purpose` and `ttl_seconds`;
/// the ticket.
pub async fn mint_ticket(
    client: &mut Client,
    user_id: &str,
    purpose: &str,
    ttl_seconds: u32,
) -> Result<String, Status> {
    let request = pb::MintTicketRequest {
        user_id: user_id.to_owned(),
        provider: "github".to_owned(),
        purpose: purpose.to_owned(),
        ttl_seconds,
    };
    Ok(client.mint_ticket(request).await?.into_inner().ticket)
}

/// ConsumeTicket; the identity of a successful call.
pub async fn consume_ticket(
    client: &mut Client,
    ticket: &str,
    purpose: &str,
) -> Result<pb::TicketIdentity, Status> {
    let request = pb::ConsumeTicketRequest {
        ticket: ticket.to_owned(),
        purpose: purpose.to_owned(),
    };
    let response = client.consume_ticket(request).await?.into_inner();
    Ok(response
        .identity
        .expect("identity in a successful response"))
}
