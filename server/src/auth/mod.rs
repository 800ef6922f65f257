//! Caller authentication and authorization, in one layer in front of every
//! handler: [`AuthLayer`] finds the bearer, [`authenticate`] resolves it
//! (with `verify/`) and applies [`policy`], and the throttles refuse callers
//! that keep failing. Only `layer.rs` and `header.rs` know the transport.

mod authenticate;
mod failure_keys;
mod failure_window;
mod failures;
mod header;
mod layer;
mod policy;
mod refusals;
mod shared_failures;
mod streams;
mod throttle;
pub(crate) mod verify;

pub(crate) use authenticate::Authenticator;
pub(crate) use failures::FailureThrottle;
pub use header::parse_bearer;
pub(crate) use layer::AuthLayer;
pub(crate) use refusals::RefusalCharge;
pub(crate) use shared_failures::share_failures;
pub(crate) use throttle::Throttle;
