//! The connection type handed to tonic: the accepted stream (TLS already
//! done when configured), closed when it has not delivered the HTTP/2
//! client preface by its deadline, and holding its share of the server's
//! connections (in all and of its peer's) for as long as it lives.
//!
//! The deadline sits above TLS, so it counts the plaintext HTTP/2 bytes the
//! peer sent: a peer that only completes a handshake, or sends part of the
//! preface, gets nothing more than a peer that sends nothing. Once the
//! preface is in, the wrapper only passes bytes through: from then on
//! HTTP/2 keepalive pings decide whether an idle connection is still alive.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use super::accept::Held;

/// Length of the HTTP/2 client connection preface as counted here: the
/// magic (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, 24 bytes) and the header of
/// the SETTINGS frame that must follow it (9 bytes). Until the SETTINGS
/// frame comes, h2 waits for it without a timer and pings nobody, so a peer
/// that sends only the magic would otherwise stay. Checking the bytes is
/// h2's job.
const PREFACE_LEN: usize = 24 + 9;

/// An accepted connection: `IO` until the peer hangs up or misses its
/// preface deadline.
pub(crate) struct Guarded<IO> {
    io: IO,
    preface: Option<Preface>,
    _held: Held,
}

/// The part of the preface still to come, and when it is too late.
struct Preface {
    missing: usize,
    deadline: Pin<Box<Sleep>>,
}

impl<IO> Guarded<IO> {
    /// `io`, whose preface must be complete by `deadline` (`None`: no
    /// deadline), holding `held` until it is dropped.
    pub(crate) fn new(io: IO, deadline: Option<Instant>, held: Held) -> Self {
        let preface = deadline.map(|deadline| Preface {
            missing: PREFACE_LEN,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        });
        Self {
            io,
            preface,
            _held: held,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(preface) = &mut this.preface else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        // Polled before the read, so a peer that trickles bytes is held to
        // the deadline too; while the read is pending, the timer wakes the
        // connection's task when the deadline comes.
        if preface.deadline.as_mut().poll(cx).is_ready() {
            tracing::debug!("no HTTP/2 preface in time; closing the connection");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface in time",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = buf.filled().len() - before;
            preface.missing = preface.missing.saturating_sub(read);
            if preface.missing == 0 {
                this.preface = None;
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The wrapped stream's connection info: `TcpConnectInfo` for plaintext,
/// `TlsConnectInfo<TcpConnectInfo>` (with the peer's certificates) for
/// TLS, as tonic's own listeners give them.
impl<IO: Connected> Connected for Guarded<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
