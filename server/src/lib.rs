//! Tessera's server, as the `tessera` binary runs it ([`cli::main`]).
//!
//! A request's path through the crate, one folder per layer: `auth/`
//! (caller authentication and the policy table, a tower layer) → `grpc/`
//! (the thin adapter) → `domain/` (one file per RPC group, no transport) →
//! [`store`] (a trait, implemented with sea-orm). `docs/design.md` follows
//! one request through them.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod auth;
mod background;
pub mod cli;
mod config;
mod domain;
mod grpc;
mod health;
mod metrics;
mod server;
pub mod store;

pub use auth::parse_bearer;
