//! The one mapping of sea-orm and sqlx errors into [`StoreError`]: an
//! outage (the database went away) or anything else. They are never given
//! a database password, but a URL in their messages is masked all the same.

use sea_orm::sqlx::Error as SqlxError;
use sea_orm::{DbErr, RuntimeErr};

use crate::store::StoreError;
use crate::store::database_url::mask_urls_in;

/// `err` as the backend-free error callers see.
pub(super) fn store_error(err: &DbErr) -> StoreError {
    let message = mask_urls_in(&err.to_string());
    if is_outage(err) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Db(message)
    }
}

/// True when `err` means the database could not be reached rather than
/// that the statement was wrong.
pub(super) fn is_outage(err: &DbErr) -> bool {
    match err {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        // A connection lost in the middle of a statement surfaces as an
        // execution or query error; it is an outage all the same.
        DbErr::Exec(RuntimeErr::SqlxError(cause)) | DbErr::Query(RuntimeErr::SqlxError(cause)) => {
            connection_lost(cause)
        }
        _ => false,
    }
}

fn connection_lost(err: &SqlxError) -> bool {
    match err {
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::Protocol(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed => true,
        // SQLSTATE 08xxx: connection exception; 57P01-03: admin shutdown,
        // crash shutdown, cannot connect now; 53300: too many connections.
        SqlxError::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}
