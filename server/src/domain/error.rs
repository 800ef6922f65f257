//! The domain error. It knows no transport: `grpc/status.rs` turns it into
//! a gRPC status, in one place.

use crate::store::{StoreError, TicketRejection};

/// Errors of the domain layer. Messages never hold a secret: at most the
/// first 8 characters of a ticket.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bearer was missing, malformed, unknown or revoked.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// A valid credential whose principal cannot be resolved now (its
    /// service user cannot be seeded). Refused as unauthenticated, but the
    /// caller did nothing wrong, so nothing is charged to its budget.
    #[error("principal unavailable: {0}")]
    PrincipalUnavailable(&'static str),
    /// A ticket was refused.
    #[error("ticket {ticket} refused: {}", reason.outcome())]
    Ticket {
        /// Why.
        reason: TicketRejection,
        /// First 8 characters of the ticket, escaped, and `…`.
        ticket: String,
    },
    /// A known caller lacks the right.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A request field is invalid.
    #[error("invalid {field}: {description}")]
    InvalidArgument {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        description: String,
    },
    /// The named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The named thing exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The system is not in a state that allows the call.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The server is shutting down and mints nothing more.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// No random bytes to mint a credential with.
    #[error(transparent)]
    Entropy(#[from] tessera_client::token::EntropyUnavailable),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Result of a domain call.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the call was refused for what its caller sent, false when
    /// the server could not answer it (storage, entropy, a principal that
    /// cannot be resolved now).
    pub fn is_callers_fault(&self) -> bool {
        !matches!(
            self,
            Error::PrincipalUnavailable(_)
                | Error::ShuttingDown
                | Error::Entropy(_)
                | Error::Store(_)
        )
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            description: description.into(),
        }
    }
}
