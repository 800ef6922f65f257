//! The gRPC adapter: decode, call the domain, convert the result.

mod convert;
mod credentials;

pub use credentials::CredentialsApi;
