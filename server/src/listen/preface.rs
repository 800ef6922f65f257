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

/// Length of the magic that opens the HTTP/2 client connection preface
/// (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`). Checking its bytes is h2's job.
const MAGIC_LEN: usize = 24;
/// Length of an HTTP/2 frame header.
const FRAME_HEADER_LEN: usize = 9;
/// Type of a SETTINGS frame.
const SETTINGS: u8 = 0x4;

/// An accepted connection: `IO` until the peer hangs up or misses its
/// preface deadline.
pub(crate) struct Guarded<IO> {
    io: IO,
    preface: Option<Preface>,
    _held: Held,
}

/// The part of the preface still to come, and when it is too late.
struct Preface {
    progress: Progress,
    deadline: Pin<Box<Sleep>>,
}

/// How far a connection has come through its preface: the magic, then a
/// whole SETTINGS frame (its header, then as much payload as the header
/// declares). Until that frame is in, h2 waits for it without a timer and
/// pings nobody, so the deadline must cover all of it.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes of the magic and the frame header read so far.
    seen: usize,
    header: [u8; FRAME_HEADER_LEN],
    /// Payload bytes still to come, once the header is in.
    payload_left: Option<usize>,
}

impl Progress {
    /// Counts `bytes` read from the peer; true once the preface is in.
    fn read(&mut self, mut bytes: &[u8]) -> io::Result<bool> {
        while self.seen < MAGIC_LEN + FRAME_HEADER_LEN {
            let Some((&byte, rest)) = bytes.split_first() else {
                return Ok(false);
            };
            if let Some(slot) = self.seen.checked_sub(MAGIC_LEN) {
                self.header[slot] = byte;
            }
            self.seen += 1;
            bytes = rest;
        }
        let left = match self.payload_left {
            Some(left) => left,
            None => {
                let [a, b, c, kind, ..] = self.header;
                if kind != SETTINGS {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the first HTTP/2 frame is not SETTINGS",
                    ));
                }
                u32::from_be_bytes([0, a, b, c]) as usize
            }
        };
        let left = left.saturating_sub(bytes.len());
        self.payload_left = Some(left);
        Ok(left == 0)
    }
}

impl<IO> Guarded<IO> {
    /// `io`, whose preface must be complete by `deadline` (`None`: no
    /// deadline), holding `held` until it is dropped.
    pub(crate) fn new(io: IO, deadline: Option<Instant>, held: Held) -> Self {
        let preface = deadline.map(|deadline| Preface {
            progress: Progress::default(),
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
            let read = buf.filled().get(before..).unwrap_or_default();
            if preface.progress.read(read)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; MAGIC_LEN] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame_header(length: u32, kind: u8) -> Vec<u8> {
        let [_, a, b, c] = length.to_be_bytes();
        vec![a, b, c, kind, 0, 0, 0, 0, 0]
    }

    #[test]
    fn the_preface_is_the_magic_and_a_whole_settings_frame() {
        let mut sent = MAGIC.to_vec();
        sent.extend(frame_header(6, SETTINGS));
        sent.extend([0, 3, 0, 0, 0, 100]);
        // However the bytes are split, the last one completes it.
        for chunk in [1, 7, 24, 33, sent.len()] {
            let mut progress = Progress::default();
            let done: Vec<bool> = sent
                .chunks(chunk)
                .map(|part| progress.read(part).unwrap_or(false))
                .collect();
            assert_eq!(done.iter().filter(|d| **d).count(), 1, "chunks of {chunk}");
            assert_eq!(done.last(), Some(&true), "chunks of {chunk}");
        }
    }

    #[test]
    fn a_settings_header_without_its_payload_is_not_a_preface() {
        let mut progress = Progress::default();
        let mut sent = MAGIC.to_vec();
        sent.extend(frame_header(16_380, SETTINGS));
        sent.extend([0; 6]);
        assert!(!progress.read(&sent).unwrap_or(true));
        let mut empty = Progress::default();
        let mut sent = MAGIC.to_vec();
        sent.extend(frame_header(0, SETTINGS));
        assert!(
            empty.read(&sent).unwrap_or(false),
            "an empty SETTINGS frame"
        );
    }

    #[test]
    fn a_first_frame_of_another_type_is_refused() {
        let mut progress = Progress::default();
        let mut sent = MAGIC.to_vec();
        sent.extend(frame_header(8, 0x6));
        assert!(progress.read(&sent).is_err());
    }
}
