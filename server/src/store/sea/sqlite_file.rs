//! The SQLite file holds inbound secrets in plain text, so it is created
//! readable by its owner only (0600) before SQLite opens it, whatever the
//! umask: SQLite gives the `-wal` and `-shm` files it creates the mode of
//! the database file. A missing directory for it is created 0700, one
//! level only, so a mistyped deeper path still fails. An existing file is
//! left as it is, with a warning when others may read it.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sea_orm::DbErr;
use sea_orm::sqlx::sqlite::SqliteConnectOptions;

use super::DbResult;

/// Creates the file `url` names, and its directory, unless they exist.
pub(super) fn prepare(url: &str) -> DbResult<()> {
    let Some(path) = file_of(url) else {
        return Ok(());
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => tracing::info!(directory = %dir.display(), "created the database directory"),
            // A missing grandparent: creating the file says so.
            Err(err) if matches!(err.kind(), ErrorKind::AlreadyExists | ErrorKind::NotFound) => {}
            Err(err) => return Err(cannot("create", dir, &err)),
        }
    }
    // `create_new`: a file (or a symlink) already there is not touched.
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match created {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            warn_if_others_may_read(&path);
            Ok(())
        }
        Err(err) => Err(cannot("create", &path, &err)),
    }
}

/// The file SQLite would open for `url`; `None` for an in-memory database.
fn file_of(url: &str) -> Option<PathBuf> {
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    (!in_memory).then(|| options.get_filename().to_owned())
}

fn warn_if_others_may_read(path: &Path) {
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{mode:o}"),
            "the database file holds secrets and other users may read it: chmod 600 it and its -wal and -shm files"
        );
    }
}

fn cannot(what: &str, path: &Path, err: &std::io::Error) -> DbErr {
    DbErr::Custom(format!("cannot {what} {}: {err}", path.display()))
}
