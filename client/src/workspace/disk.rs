//! Reading and writing one secret file, and refusing places where another
//! user could swap it: a directory others may write to (unless sticky, as
//! `/tmp` is, where only an entry's owner may rename or delete it), and a
//! symlink at the secret's path, which is never followed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::Secret;

/// Files larger than this are not secrets written by this crate (tokens are
/// under 100 bytes); refusing them keeps a misconfigured path from making
/// every request read a huge file.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// Attempts at finding an unused temporary file name; with 64 random bits a
/// second attempt already means something else is wrong.
const TEMP_ATTEMPTS: usize = 4;

/// The directory `path` is in (`.` for a bare file name).
pub(super) fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `path` with its directory resolved (symlinks, `.`, `..`) as far as it
/// exists: the directory may only be created by the first save.
pub(super) fn canonical(path: &Path) -> PathBuf {
    let Some(name) = path.file_name() else {
        return std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    };
    let mut existing = dir_of(path);
    let mut missing = Vec::new();
    loop {
        if let Ok(mut resolved) = fs::canonicalize(existing) {
            resolved.extend(missing.iter().rev());
            resolved.push(name);
            return resolved;
        }
        match existing.file_name() {
            Some(last) => {
                missing.push(last);
                existing = dir_of(existing);
            }
            None => return std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
        }
    }
}

/// The secret at `path`, surrounding whitespace trimmed; `None` when the file
/// (or its directory) is missing or holds only whitespace.
pub(super) fn read_secret(path: &Path) -> io::Result<Option<Secret>> {
    match check_dir(dir_of(path)) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    }
    let file = match open(OpenOptions::new().read(true), path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    let mut raw = String::new();
    file.take(MAX_FILE_LEN + 1).read_to_string(&mut raw)?;
    if raw.len() as u64 > MAX_FILE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {MAX_FILE_LEN} bytes", path.display()),
        ));
    }
    let value = raw.trim();
    Ok((!value.is_empty()).then(|| Secret::new(value)))
}

/// Writes `contents` to a new private file next to `target`, then renames
/// it over `target` (replacing a symlink there, never writing through it).
pub(super) fn write_atomically(target: &Path, contents: &[u8]) -> io::Result<()> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let dir = dir_of(target);
    create_dir(dir)?;
    check_dir(dir)?;

    let (temp_path, file) = create_temp(dir, name)?;
    if let Err(err) = write_and_rename(file, contents, &temp_path, target) {
        // Nothing else may be done about a failed cleanup; the error that
        // matters is the write's.
        let _ = fs::remove_file(&temp_path);
        return Err(err);
    }
    // The rename is only durable once the directory entry is; some
    // filesystems cannot sync a directory, and the value is in place either
    // way, so this is best effort.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Deletes `path`; a missing file or directory is fine. `remove_file` never
/// follows a symlink (it removes the link), and the directory is checked as
/// for a write, so a secret is only ever deleted where it could be written.
pub(super) fn remove(path: &Path) -> io::Result<()> {
    let dir = dir_of(path);
    match check_dir(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    }
    match fs::remove_file(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    }
    // As after a rename: durable once the directory entry is; best effort.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn write_and_rename(mut file: File, contents: &[u8], temp: &Path, target: &Path) -> io::Result<()> {
    file.write_all(contents)?;
    // Data on disk before the rename, so a crash never leaves the target
    // renamed but empty.
    file.sync_all()?;
    drop(file);
    fs::rename(temp, target)
}

/// Creates a fresh temporary file next to the target. `create_new` (O_EXCL)
/// never opens an existing file or follows a planted symlink, and the mode is
/// applied at creation, so the secret is never in a file others can read.
fn create_temp(dir: &Path, name: &std::ffi::OsStr) -> io::Result<(PathBuf, File)> {
    let mut last_err = None;
    for _ in 0..TEMP_ATTEMPTS {
        let mut temp_name = name.to_owned();
        temp_name.push(format!(".{:016x}.tmp", rand::random::<u64>()));
        let path = dir.join(temp_name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match open(&options, &path) {
            Ok(file) => return Ok((path, file)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last_err = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no temporary file name available")))
}

fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    // Only directories created here get 0700; an existing configs directory
    // keeps the mode its owner chose (unless others may write to it).
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens `path` as `options` say, never through a symlink at `path`.
fn open(options: &OpenOptions, path: &Path) -> io::Result<File> {
    let mut options = options.clone();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    options.open(path).map_err(|err| {
        let is_link = err.kind() != io::ErrorKind::AlreadyExists
            && fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
        if is_link {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symlink, and secret files are never followed",
                    path.display()
                ),
            )
        } else {
            err
        }
    })
}

/// Refuses a directory in which another user could replace a secret: one
/// that group or others may write to, unless it is sticky.
#[cfg(unix)]
fn check_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is writable by other users and not sticky (mode {:o}), so another user \
                 could replace a secret in it: chmod go-w it",
                dir.display(),
                mode & 0o7777
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_dir(dir: &Path) -> io::Result<()> {
    fs::metadata(dir).map(|_| ())
}
