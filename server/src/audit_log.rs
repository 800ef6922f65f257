//! `TESSERA_AUDIT_LOG`: a copy of every committed audit entry as one JSON
//! line, on standard output or appended to a file, for a log pipeline.
//!
//! The database writer hands entries over a bounded channel to a thread of
//! their own, so a slow disk or a reader that stopped reading standard
//! output never holds up a request. When the channel is full the entry is
//! dropped from the copy (the audit table still has it), counted in
//! `tessera_audit_log_dropped_total`, and a warning says so at most once a
//! minute.

use std::fs::OpenOptions;
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::store::{AuditRecord, AuditTap};

mod output;

use output::Output;

/// Entries waiting for the writing thread at most.
const CAPACITY: usize = 8_192;
/// Warnings about lost entries, at most one per this period.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Counter of entries left out of the copy.
const DROPPED: &str = "tessera_audit_log_dropped_total";

/// Where the copy goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AuditLogTarget {
    /// Standard output, beside the install-token banner.
    Stdout,
    /// This file, appended to; created with mode 0600.
    File(PathBuf),
}

/// Parses `TESSERA_AUDIT_LOG`: `stdout`, or a file path. Words that read
/// as "no copy" are refused rather than taken as a file name: leaving the
/// variable unset is how the copy is turned off.
pub(crate) fn parse_target(value: &str) -> Result<AuditLogTarget, String> {
    match value.trim() {
        "" => Err("expected `stdout` or a file path".into()),
        "off" | "none" | "false" | "no" | "0" => {
            Err("expected `stdout` or a file path; leave it unset for no copy".into())
        }
        "stdout" => Ok(AuditLogTarget::Stdout),
        path => Ok(AuditLogTarget::File(PathBuf::from(path))),
    }
}

/// What the writing thread receives.
enum Message {
    Entry(AuditRecord),
    /// Write what came before, then stop.
    Stop,
}

/// The running copy: the tap to give the store, and the thread to stop.
pub(crate) struct AuditLog {
    sender: SyncSender<Message>,
    done: Receiver<()>,
}

impl AuditLog {
    /// Opens `target` (a file now, so that a bad path stops the server at
    /// startup) and starts the writing thread.
    pub(crate) fn start(target: &AuditLogTarget) -> std::io::Result<Self> {
        let output = match target {
            AuditLogTarget::Stdout => Output::Stdout,
            AuditLogTarget::File(path) => Output::file(open(path)?),
        };
        let (sender, receiver) = mpsc::sync_channel(CAPACITY);
        let (done_tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("tessera-audit-log".into())
            .spawn(move || {
                output::run(&receiver, output);
                let _ = done_tx.send(());
            })?;
        Ok(Self { sender, done })
    }

    /// The tap that feeds this copy.
    pub(crate) fn tap(&self) -> Tap {
        Tap {
            sender: self.sender.clone(),
            warned: Warned::default(),
        }
    }

    /// Writes out what is queued and stops, waiting at most `timeout`
    /// (entries committed later are not copied).
    pub(crate) async fn finish(self, timeout: Duration) {
        let waited = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + timeout;
            let mut stop = Message::Stop;
            loop {
                match self.sender.try_send(stop) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => break,
                    Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                        stop = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(TrySendError::Full(_)) => return Err(RecvTimeoutError::Timeout),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            self.done.recv_timeout(left)
        });
        if !matches!(waited.await, Ok(Ok(()))) {
            tracing::warn!("the audit log copy did not finish writing in time");
        }
    }
}

/// Creates `path` with mode 0600 (an existing file keeps its mode), to
/// append to.
fn open(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("TESSERA_AUDIT_LOG {}: {err}", path.display()),
        )
    })
}

/// Hands committed entries to the writing thread, never waiting for it.
pub(crate) struct Tap {
    sender: SyncSender<Message>,
    warned: Warned,
}

impl AuditTap for Tap {
    fn committed(&self, entries: &[&AuditRecord]) {
        let mut dropped = 0_u64;
        for entry in entries {
            match self.sender.try_send(Message::Entry((*entry).clone())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => dropped += 1,
                // Stopped: the server is shutting down.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        if dropped > 0 {
            metrics::counter!(DROPPED).increment(dropped);
            self.warned.warn(|| {
                tracing::warn!(
                    dropped,
                    "the audit log copy cannot keep up; entries are left out of it (they are in the audit table)"
                );
            });
        }
    }
}

/// When a rate-limited warning was last given.
#[derive(Default)]
pub(super) struct Warned(Mutex<Option<Instant>>);

impl Warned {
    /// Runs `warn` unless it ran less than [`WARN_EVERY`] ago.
    pub(super) fn warn(&self, warn: impl FnOnce()) {
        let Ok(mut last) = self.0.lock() else { return };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return;
        }
        *last = Some(now);
        drop(last);
        warn();
    }
}

/// Unix milliseconds as RFC 3339 in UTC, to the millisecond.
fn rfc3339(ms: i64) -> String {
    let at = match u64::try_from(ms) {
        Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        Err(_) => UNIX_EPOCH,
    };
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditRecord {
        AuditRecord {
            at: 0,
            actor: String::new(),
            action: action.into(),
            resource: String::new(),
            outcome: "ok".into(),
            credential_id: String::new(),
            peer: String::new(),
        }
    }

    #[test]
    fn a_full_channel_drops_entries_instead_of_waiting() {
        let (sender, receiver) = mpsc::sync_channel(1);
        let tap = Tap {
            sender,
            warned: Warned::default(),
        };
        let (a, b) = (entry("a"), entry("b"));
        tap.committed(&[&a, &b]);
        tap.committed(&[&b]);
        let kept: Vec<String> = receiver
            .try_iter()
            .filter_map(|message| match message {
                Message::Entry(entry) => Some(entry.action),
                Message::Stop => None,
            })
            .collect();
        assert_eq!(kept, ["a"]);
    }

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target(" stdout "), Ok(AuditLogTarget::Stdout));
        assert_eq!(
            parse_target("/var/log/tessera/audit.jsonl"),
            Ok(AuditLogTarget::File("/var/log/tessera/audit.jsonl".into()))
        );
        assert!(parse_target(" ").is_err());
        for off in ["off", "none", "false"] {
            assert!(parse_target(off).is_err(), "{off} would be a file name");
        }
    }
}
