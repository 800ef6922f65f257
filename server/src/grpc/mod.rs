//! The gRPC adapter: decode, call the domain, convert the result; the one
//! translation of domain errors into statuses is in `status.rs`.

mod convert;
mod credentials;
mod lifecycle;
mod status;
mod workspaces;

pub(crate) use credentials::CredentialsApi;
pub(crate) use status::CallerAtFault;
