//! The one translation of a domain error into a gRPC status, and the one
//! place its cause is logged.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{Error, TicketRejection};
use crate::store::StoreError;

/// `google.rpc.ErrorInfo` domain of Tessera's errors.
const ERROR_DOMAIN: &str = "tessera.v1";

/// The `google.rpc.ErrorInfo` reason of a refused ticket.
fn error_info_reason(rejection: TicketRejection) -> &'static str {
    match rejection {
        TicketRejection::Unknown => "TICKET_UNKNOWN",
        TicketRejection::Expired => "TICKET_EXPIRED",
        TicketRejection::PurposeMismatch => "TICKET_PURPOSE_MISMATCH",
        TicketRejection::Malformed => "TICKET_MALFORMED",
        TicketRejection::Replayed => "TICKET_REPLAYED",
    }
}

/// The source of every status that refused a call for what its caller
/// sent (a wrong or spent credential, a bad field, a state that does not
/// allow it), as opposed to a server that could not answer. For the RPCs
/// anyone may call, whose handler judges the credential in the message, the
/// auth layer charges such a refusal to the caller's failure budget.
#[derive(Debug, thiserror::Error)]
#[error("the call was refused for what its caller sent")]
pub(crate) struct CallerAtFault;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let at_fault = err.is_callers_fault();
        let mut status = status_of(err);
        if at_fault {
            status.set_source(Arc::new(CallerAtFault));
        }
        status
    }
}

/// The status of `err`; its cause is logged here, once.
fn status_of(err: Error) -> Status {
    match err {
        Error::Unauthenticated(reason) => {
            tracing::info!(reason, "authentication failed");
            Status::unauthenticated("invalid or missing credentials")
        }
        Error::PrincipalUnavailable(reason) => {
            tracing::warn!(
                reason,
                "valid credential refused: its principal is unavailable"
            );
            Status::unauthenticated("invalid or missing credentials")
        }
        Error::Ticket { reason, ticket } => {
            let reason = error_info_reason(reason);
            tracing::info!(reason, ticket = %ticket, "ticket refused");
            Status::with_error_details(
                Code::Unauthenticated,
                format!("ticket {ticket} refused"),
                ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()),
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
        Error::ShuttingDown => Status::unavailable("the server is shutting down"),
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
        // A stored secret that does not open is the server's fault (a key
        // missing, or the database altered), not a state the caller could
        // change: INTERNAL, and the caller learns nothing of which.
        Error::Store(StoreError::Sealing(cause)) => {
            tracing::error!(error = %cause, "a stored secret cannot be opened");
            Status::internal("internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ticket_rejection_has_its_own_reason_and_is_unauthenticated() {
        let all = [
            TicketRejection::Unknown,
            TicketRejection::Expired,
            TicketRejection::PurposeMismatch,
            TicketRejection::Malformed,
            TicketRejection::Replayed,
        ];
        let mut reasons: Vec<_> = all.iter().map(|r| error_info_reason(*r)).collect();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        let status = Status::from(Error::Ticket {
            reason: TicketRejection::Expired,
            ticket: "tsr_tkt_…".into(),
        });
        assert_eq!(status.code(), Code::Unauthenticated);
        let details = status.get_error_details();
        let info = details.error_info().map(|info| info.reason.as_str());
        assert_eq!(info, Some("TICKET_EXPIRED"));
    }
}
