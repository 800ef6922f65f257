//! Client for Tessera, the gRPC credential service.
//!
//! * [`pb`]: the generated messages and the `CredentialServiceClient` stub
//!   (and, with the `server` feature, the server trait).
//! * [`Client`]: a connected client that attaches a bearer to every call,
//!   with typed helpers for managing credentials ([`Client::mint_access_token`],
//!   [`Client::all_credentials`], [`Client::revoke`]).
//! * [`token`]: the format of Tessera tokens, shared with the server.
//! * [`Secret`]: a string whose `Debug` is redacted.
//! * [`workspace`]: the runtime side of workspaces (secret files, the
//!   inbound check and its tower layer, registration).
#![forbid(unsafe_code)]

mod client;
mod lifecycle;
mod redact;
mod secret;
#[cfg(feature = "tls")]
mod tls;
pub mod token;
pub mod workspace;

pub use client::{BearerInterceptor, Client, ClientBuilder, ConnectError};
pub use secret::Secret;
#[cfg(feature = "tls")]
pub use tls::ClientTls;
/// The tonic version this crate was generated with, so embedders match it.
pub use tonic;

/// Generated protobuf messages and gRPC stubs for `tessera.v1`.
pub mod pb {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("tessera.v1");
}

/// Encoded `FileDescriptorSet` of `tessera.v1` (for gRPC server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tessera_descriptor.bin"));

/// The README's Rust examples, compiled as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// This crate's README examples, compiled as doctests too.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ClientReadmeDoctests;
