//! The open-file limit and the connection cap: every connection costs a
//! file descriptor, so the cap only protects the server when it stays
//! below the limit, with room for the database and the rest.

use std::num::NonZeroU32;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept for everything but client connections: the database
/// pool and its files, the runtime, the listeners, standard streams.
const RESERVED: u64 = 256;
/// Highest soft limit asked for when the hard limit is unlimited.
const MOST: u64 = 1 << 20;

/// Raises this process's soft open-file limit to its hard limit (as Go
/// programs do: the soft limit, often 1,024, exists for programs that use
/// `select`, which Tessera does not), then warns when `max_connections`
/// could use up what is left.
pub(crate) fn raise_limit(max_connections: NonZeroU32) {
    let limit = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            let wanted = hard.min(MOST).max(soft);
            match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
                Ok(()) => wanted,
                Err(err) => {
                    tracing::debug!(error = %err, "could not raise the open-file limit");
                    soft
                }
            }
        }
        Ok((soft, _)) => soft,
        Err(err) => {
            tracing::debug!(error = %err, "could not read the open-file limit");
            return;
        }
    };
    if u64::from(max_connections.get()) + RESERVED > limit {
        tracing::warn!(
            max_connections = max_connections.get(),
            open_file_limit = limit,
            reserved = RESERVED,
            "TESSERA_MAX_CONNECTIONS is not below the open-file limit less what the server \
             keeps for itself: connections alone can use up the file descriptors"
        );
    }
}
