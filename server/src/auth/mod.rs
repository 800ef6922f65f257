//! Caller authentication and authorization, in one layer in front of every
//! handler: [`AuthLayer`] resolves the bearer and applies [`policy`].

mod failures;
mod header;
mod layer;
pub mod policy;
mod throttle;

pub use failures::FailureThrottle;
pub use header::parse_bearer;
pub use layer::AuthLayer;
pub use throttle::Throttle;
