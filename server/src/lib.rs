//! Tessera's server, as the `tessera` binary runs it ([`cli::main`]).
//!
//! A request's path through the crate, one folder per layer: `auth/`
//! (caller authentication and the policy table, a tower layer) → `grpc/`
//! (the thin adapter) → `domain/` (one file per RPC group, no transport) →
//! [`store`] (a trait, implemented with sea-orm). `docs/design.md` follows
//! one request through them.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
// From clippy's pedantic set, the lints that catch real defects here: lossy
// casts of durations and sizes, needless copies, and long functions.
#![warn(
    clippy::cast_possible_truncation,
    clippy::needless_pass_by_value,
    clippy::redundant_closure_for_method_calls,
    clippy::format_push_string,
    clippy::ref_option,
    clippy::map_unwrap_or,
    clippy::trivially_copy_pass_by_ref,
    clippy::too_many_lines
)]

mod audit_log;
mod auth;
mod background;
pub mod cli;
mod config;
mod domain;
mod grpc;
mod health;
mod listen;
mod metrics;
mod peers;
mod reload;
mod server;
pub mod store;

pub use auth::parse_bearer;
