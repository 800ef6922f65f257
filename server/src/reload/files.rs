//! Opening a configuration file so that what was swapped in for it cannot
//! hang or exhaust the process: a FIFO (which would wait for a writer), a
//! device such as `/dev/zero`, or a file larger than a bound.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for reading if it is a regular file (a symlink to one
/// counts). Opened non-blocking, so a FIFO is refused at once instead of
/// waiting for a writer.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

/// The contents of the regular file `path`, refused beyond `max` bytes.
pub(crate) fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_regular_files_are_read() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("tokens");
        std::fs::write(&file, "abc").expect("write");
        assert_eq!(read_bounded(&file, 3).expect("read"), b"abc");
        assert!(read_bounded(&file, 2).is_err(), "over the bound");
        assert!(read_bounded(dir.path(), 10).is_err(), "a directory");
        assert!(
            read_bounded(Path::new("/dev/zero"), 10).is_err(),
            "a device"
        );
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        // Would wait for a writer forever if opened blocking.
        assert!(read_bounded(&fifo, 10).is_err(), "a FIFO");
    }
}
