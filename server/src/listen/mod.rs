//! The connections tonic serves, from an accept loop of Tessera's own.
//!
//! - Accepting never spins: a failed accept (out of descriptors, say) is
//!   logged, rate-limited, and followed by a pause ([`accept`]).
//! - At most `TESSERA_MAX_CONNECTIONS` connections are held, and at most
//!   `TESSERA_MAX_CONNECTIONS_PER_PEER` from one address (so one peer cannot
//!   take them all); one beyond is accepted and closed at once, so its
//!   client fails fast and may try another replica, rather than waiting
//!   unseen in the listen backlog.
//! - A connection must deliver the HTTP/2 client preface within
//!   `TESSERA_PREFACE_TIMEOUT_MS` of being accepted, TLS handshake
//!   included, or it is closed ([`preface`]). That is what bounds a peer
//!   that connects and says nothing: HTTP/2 keepalive pings only start once
//!   the preface is in.
//! - TLS is done here ([`tls`]), so that the preface deadline counts what
//!   the peer sent inside TLS. The streams keep tonic's connection info
//!   (`TcpConnectInfo`, or `TlsConnectInfo<TcpConnectInfo>` with the
//!   peer's certificates), which the auth layer reads.

mod accept;
mod files;
mod preface;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;

pub(crate) use tls::{TlsConfigError, TlsFiles, TlsSettings, acceptor};

/// The TLS acceptor new connections use; a SIGHUP replaces it, and the
/// connections it already made keep their sessions.
pub(crate) type SharedAcceptor = crate::reload::Live<TlsAcceptor>;

use crate::config::Limits;
use crate::peers::PeerPlaces;
use accept::{Accepted, Capacity, accept_loop};
use preface::Guarded;

/// Connections prepared but not yet taken by tonic; its accept loop takes
/// each at once, so this only bounds a burst.
const QUEUE: usize = 64;

/// The accepted connections, as tonic's `serve_with_incoming` takes them.
pub(crate) struct Incoming<IO>(mpsc::Receiver<IO>);

impl<IO> Stream for Incoming<IO> {
    type Item = Result<IO, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|io| io.map(Ok))
    }
}

/// What the server listens for: one connection type or the other.
pub(crate) enum Listening {
    /// Plaintext HTTP/2.
    Plaintext(Incoming<Guarded<TcpStream>>),
    /// HTTP/2 over TLS.
    Tls(Incoming<Guarded<TlsStream<TcpStream>>>),
}

/// Starts accepting on `listener` (in a task that ends when tonic drops
/// the returned stream), with TLS when `tls` is set (each connection's
/// handshake uses the acceptor current when it was accepted). Also raises the
/// open-file limit (see [`files::raise_limit`]).
pub(crate) fn listen(
    listener: TcpListener,
    limits: &Limits,
    tls: Option<Arc<SharedAcceptor>>,
) -> Listening {
    files::raise_limit(limits.max_connections);
    let slots = usize::try_from(limits.max_connections.get()).unwrap_or(usize::MAX);
    let capacity = Capacity::new(
        slots.min(Semaphore::MAX_PERMITS),
        PeerPlaces::per_peer(limits.max_connections_per_peer),
    );
    let preface = limits.preface_timeout;
    let Some(shared) = tls else {
        let prepare = move |accepted: Accepted| {
            let deadline = preface.map(|timeout| accepted.at + timeout);
            std::future::ready(Some(Guarded::new(accepted.stream, deadline, accepted.held)))
        };
        return Listening::Plaintext(spawn(listener, capacity, prepare));
    };
    let handshake_timeout = limits.tls_handshake_timeout;
    let prepare = move |accepted: Accepted| {
        // Taken per connection, so a reloaded certificate serves the next one.
        let acceptor = shared.load();
        let deadline = preface.map(|timeout| accepted.at + timeout);
        // The handshake is part of the time the preface may take.
        let handshake_by = deadline.map_or(accepted.at + handshake_timeout, |deadline| {
            deadline.min(accepted.at + handshake_timeout)
        });
        async move {
            let stream = tls::handshake(acceptor, accepted.stream, handshake_by).await?;
            Some(Guarded::new(stream, deadline, accepted.held))
        }
    };
    Listening::Tls(spawn(listener, capacity, prepare))
}

/// Spawns the accept loop; its connections come out of the stream.
fn spawn<IO, P, F>(listener: TcpListener, capacity: Capacity, prepare: P) -> Incoming<IO>
where
    IO: Send + 'static,
    P: Fn(Accepted) -> F + Send + 'static,
    F: Future<Output = Option<IO>> + Send + 'static,
{
    let (ready, incoming) = mpsc::channel(QUEUE);
    tokio::spawn(accept_loop(listener, capacity, ready, prepare));
    Incoming(incoming)
}
