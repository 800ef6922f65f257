//! The domain error, and its one translation into a gRPC status.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::store::StoreError;

/// `google.rpc.ErrorInfo` domain of Tessera's errors.
pub const ERROR_DOMAIN: &str = "tessera.v1";

/// Why a ticket was refused. The `ErrorInfo` reason callers see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketRejection {
    /// Never issued, already used, or reaped.
    Unknown,
    /// Past its expiry time.
    Expired,
    /// Minted for another purpose.
    PurposeMismatch,
    /// Not a well-formed ticket.
    Malformed,
}

impl TicketRejection {
    /// The `event` label of the ticket counter.
    pub fn metric(self) -> &'static str {
        match self {
            // An unknown ticket is most often a replay of a consumed one.
            TicketRejection::Unknown => "unknown_or_replayed",
            TicketRejection::Expired => "expired",
            TicketRejection::PurposeMismatch => "purpose_mismatch",
            TicketRejection::Malformed => "malformed",
        }
    }

    /// The `ErrorInfo` reason.
    pub fn reason(self) -> &'static str {
        match self {
            TicketRejection::Unknown => "TICKET_UNKNOWN",
            TicketRejection::Expired => "TICKET_EXPIRED",
            TicketRejection::PurposeMismatch => "TICKET_PURPOSE_MISMATCH",
            TicketRejection::Malformed => "TICKET_MALFORMED",
        }
    }
}

/// Errors of the domain layer. Messages never hold a secret: at most the
/// first 8 characters of a ticket.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bearer was missing, malformed, unknown or revoked.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// A ticket was refused.
    #[error("ticket {ticket} refused: {}", reason.reason())]
    Ticket {
        /// Why.
        reason: TicketRejection,
        /// First 8 characters of the ticket and `…`.
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
    /// No random bytes to mint a credential with.
    #[error(transparent)]
    Entropy(#[from] tessera_client::token::EntropyUnavailable),
    /// The storage layer failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Result of a domain call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            description: description.into(),
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::Unauthenticated(reason) => {
                tracing::info!(reason, "authentication failed");
                Status::unauthenticated("invalid or missing credentials")
            }
            Error::Ticket { reason, ticket } => {
                tracing::info!(reason = reason.reason(), ticket = %ticket, "ticket refused");
                Status::with_error_details(
                    Code::Unauthenticated,
                    format!("ticket {ticket} refused"),
                    ErrorDetails::with_error_info(reason.reason(), ERROR_DOMAIN, HashMap::new()),
                )
            }
            Error::PermissionDenied(what) => {
                tracing::info!(what = %what, "permission denied");
                Status::permission_denied(what)
            }
            Error::InvalidArgument { field, description } => Status::with_error_details(
                Code::InvalidArgument,
                format!("invalid {field}: {description}"),
                ErrorDetails::with_bad_request_violation(field, description),
            ),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::AlreadyExists(what) => Status::already_exists(format!("{what} exists already")),
            Error::FailedPrecondition(what) => Status::failed_precondition(what),
            Error::Entropy(cause) => {
                tracing::error!(error = %cause, "cannot mint a credential");
                Status::internal("internal error")
            }
            Error::Store(StoreError::Unavailable(cause)) => {
                tracing::error!(error = %cause, "database unavailable");
                Status::unavailable("database unavailable")
            }
            Error::Store(StoreError::Db(cause)) => {
                tracing::error!(error = %cause, "database error");
                Status::internal("internal error")
            }
        }
    }
}
