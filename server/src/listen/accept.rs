//! The accept loop: takes connections off the listener, gives each a
//! connection slot, and hands it to a preparing task; when accepting fails
//! (out of file descriptors, of memory, of buffers) it says so and waits
//! before it tries again.
//!
//! tonic's own listener stream reports such an error and its accept loop
//! retries at once: with no descriptor free, that loop burns a core, starves
//! the connections already open and logs nothing above `trace`.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::peers::{PeerPlaces, Place};

/// First pause after a failed accept; it doubles while accepts keep failing.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
/// At most one warning of each kind this often; the next one says how many
/// were left out.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// A connection just taken off the listener.
pub(crate) struct Accepted {
    /// The socket, with `TCP_NODELAY` set.
    pub stream: TcpStream,
    /// When it was accepted.
    pub at: Instant,
    /// What it holds of the server's capacity while it lives.
    pub held: Held,
}

/// A connection's share of [`Capacity`], given back when dropped.
pub(crate) struct Held {
    _slot: OwnedSemaphorePermit,
    _place: Place,
}

/// How many connections may be held: in all, and per peer address.
pub(crate) struct Capacity {
    slots: Arc<Semaphore>,
    per_peer: Arc<PeerPlaces>,
    /// The last slots, which go only to peers holding fewer than
    /// [`LIGHT_PEER`] connections: a few addresses that each hold their
    /// share cannot take every slot from the others.
    reserve: usize,
}

/// Connections a peer (an address, or an IPv6 /64) may hold and still get
/// one of the reserved slots.
const LIGHT_PEER: u32 = 8;

impl Capacity {
    /// `slots` in all, `per_peer` per address, a tenth of the slots kept
    /// for peers that hold few.
    pub(crate) fn new(slots: usize, per_peer: Arc<PeerPlaces>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            per_peer,
            reserve: slots / 10,
        }
    }

    /// A place for `peer`, whose slot was just taken: only a light peer's
    /// when that slot was one of the reserve.
    fn place(&self, peer: IpAddr) -> Option<Place> {
        if self.slots.available_permits() < self.reserve {
            self.per_peer
                .acquire_if_holding_under(Some(peer), LIGHT_PEER)
        } else {
            self.per_peer.acquire(Some(peer))
        }
    }
}

/// Accepts connections on `listener` until `ready`'s receiver is dropped
/// (tonic drops it when it stops serving, which also closes the listener).
/// Each connection that gets a slot and a place of its peer's from
/// `capacity` goes through `prepare` in its own task; what comes out is
/// sent on `ready`. A connection beyond either bound is closed at once.
pub(crate) async fn accept_loop<IO, P, F>(
    listener: TcpListener,
    capacity: Capacity,
    ready: mpsc::Sender<IO>,
    prepare: P,
) where
    IO: Send + 'static,
    P: Fn(Accepted) -> F,
    F: Future<Output = Option<IO>> + Send + 'static,
{
    let mut pause = FIRST_PAUSE;
    let mut failures = Warnings::default();
    let mut refusals = Warnings::default();
    let mut peer_refusals = Warnings::default();
    loop {
        let accepted = tokio::select! {
            () = ready.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) if peer_gave_up(&err) => {
                tracing::debug!(error = %err, "a connection closed before it was accepted");
                continue;
            }
            Err(err) => {
                failures.warn(|suppressed| {
                    tracing::warn!(
                        error = %err,
                        retry_in_ms = millis(pause),
                        suppressed,
                        "accepting connections failed; waiting before the next attempt"
                    );
                });
                tokio::select! {
                    () = ready.closed() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(LONGEST_PAUSE);
                continue;
            }
        };
        pause = FIRST_PAUSE;
        let Ok(slot) = capacity.slots.clone().try_acquire_owned() else {
            drop(stream);
            refusals.warn(|suppressed| {
                tracing::warn!(
                    suppressed,
                    "connection limit reached; closing new connections"
                );
            });
            continue;
        };
        let Some(place) = capacity.place(peer.ip()) else {
            drop(stream);
            peer_refusals.warn(|suppressed| {
                tracing::warn!(
                    peer = %peer.ip(),
                    suppressed,
                    "connection limit per address reached; closing its new connections"
                );
            });
            continue;
        };
        // As tonic sets it on listeners it binds itself. Without it, a
        // response written in two parts waits for the peer's delayed ACK:
        // 40 ms at the 99th percentile of ticket pairs on an idle server.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let at = Instant::now();
        let held = Held {
            _slot: slot,
            _place: place,
        };
        let prepared = prepare(Accepted { stream, at, held });
        let ready = ready.clone();
        tokio::spawn(async move {
            if let Some(io) = prepared.await {
                // Fails only when tonic stopped serving: the connection closes.
                let _ = ready.send(io).await;
            }
        });
    }
}

/// Errors of one connection (its peer reset it while it waited in the
/// backlog), not of the listener: the next accept may go ahead at once.
fn peer_gave_up(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One kind of warning, written at most once every [`WARN_EVERY`].
#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    suppressed: u64,
}

impl Warnings {
    /// Calls `write` with the number of warnings left out since the last
    /// one written, unless that one is less than [`WARN_EVERY`] old.
    fn warn(&mut self, write: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < WARN_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        write(self.suppressed);
        self.suppressed = 0;
        self.last = Some(now);
    }
}
