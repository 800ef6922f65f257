//! The writing thread of the audit log copy: one JSON object per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::mpsc::Receiver;

use super::{DROPPED, Message, Warned, rfc3339};
use crate::store::AuditRecord;

/// The text of the install-token banner's line. Every audit text is free
/// to hold it (a resource may be whatever a request carried), so it is
/// written with its colon escaped: `grep 'INSTALL TOKEN:'` on a standard
/// output that also carries the copy still finds the banner only.
const BANNER_MARK: &str = "INSTALL TOKEN:";
/// The same text as JSON reads it back.
const BANNER_MARK_ESCAPED: &str = "INSTALL TOKEN\\u003a";

/// Where lines are written.
pub(super) enum Output {
    /// Standard output: each line written whole under its lock, so that it
    /// never interleaves with a banner.
    Stdout,
    /// A file, buffered, flushed whenever no entry is waiting.
    File(BufWriter<File>),
}

impl Output {
    pub(super) fn file(file: File) -> Self {
        Self::File(BufWriter::new(file))
    }

    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        match self {
            Self::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(line.as_bytes())?;
                stdout.flush()
            }
            Self::File(file) => file.write_all(line.as_bytes()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stdout => Ok(()),
            Self::File(file) => file.flush(),
        }
    }
}

/// Writes every entry `receiver` gives until it is told to stop or every
/// sender is gone. A failed write loses that entry (counted, and warned
/// about at most once a minute), never the thread.
pub(super) fn run(receiver: &Receiver<Message>, mut output: Output) {
    let warned = Warned::default();
    let failed = |err: std::io::Error| {
        metrics::counter!(DROPPED).increment(1);
        warned.warn(|| tracing::warn!(error = %err, "could not write the audit log copy"));
    };
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Entry(entry) => {
                    if let Err(err) = output.write_line(&line(&entry)) {
                        failed(err);
                    }
                }
                Message::Stop => {
                    output.flush().unwrap_or_else(failed);
                    return;
                }
            }
            next = receiver.try_recv().ok();
        }
        // Nothing waiting: what was written so far goes out now.
        output.flush().unwrap_or_else(failed);
    }
}

/// One entry as a JSON object and a newline. The texts were escaped when
/// the entry was made, so they hold no control character.
fn line(entry: &AuditRecord) -> String {
    let object = serde_json::json!({
        "at": rfc3339(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "resource": entry.resource,
        "outcome": entry.outcome,
        "credential_id": entry.credential_id,
        "peer": entry.peer,
    });
    let mut line = object.to_string().replace(BANNER_MARK, BANNER_MARK_ESCAPED);
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_that_never_reads_as_a_banner() {
        let entry = AuditRecord {
            at: 1_500,
            actor: "ada@example.com".into(),
            action: "ticket.mint".into(),
            resource: "INSTALL TOKEN: fake\\u{000A}".into(),
            outcome: "ok".into(),
            credential_id: "usr_0123456789abcdef".into(),
            peer: "127.0.0.1:5000".into(),
        };
        let line = line(&entry);
        assert!(line.ends_with('\n') && line.lines().count() == 1);
        assert!(!line.contains(BANNER_MARK), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["at"], "1970-01-01T00:00:01.500Z");
        assert_eq!(value["resource"], entry.resource.as_str());
        assert_eq!(value["peer"], "127.0.0.1:5000");
        assert_eq!(value["credential_id"], entry.credential_id.as_str());
    }
}
