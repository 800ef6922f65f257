//! The workspace runtime's secrets on disk.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use crate::Secret;

/// Environment variable naming the directory of the runtime's secret files.
pub const CONFIGS_DIR_ENV: &str = "CONFIGS_DIR";
/// The directory used when [`CONFIGS_DIR_ENV`] is unset or empty.
pub const DEFAULT_CONFIGS_DIR: &str = "/configs";
/// File name of the platform inbound secret inside the configs directory.
pub const INBOUND_SECRET_FILE: &str = ".platform_inbound_secret";
/// File name of the workspace auth token inside the configs directory.
pub const AUTH_TOKEN_FILE: &str = ".auth_token";

/// Files larger than this are not secrets written by this crate (tokens are
/// under 100 bytes); refusing them keeps a misconfigured path from making
/// every request read a huge file.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// Attempts at finding an unused temporary file name; with 64 random bits a
/// second attempt already means something else is wrong.
const TEMP_ATTEMPTS: usize = 4;

/// The pair of secret files a workspace runtime keeps in its configs
/// directory. Cloning is cheap, and clones share each file's cache.
#[derive(Clone, Debug)]
pub struct WorkspaceFiles {
    dir: PathBuf,
    inbound_secret: SecretFile,
    auth_token: SecretFile,
}

impl WorkspaceFiles {
    /// The files in `dir` (used as is; created on the first save).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            inbound_secret: SecretFile::new(dir.join(INBOUND_SECRET_FILE)),
            auth_token: SecretFile::new(dir.join(AUTH_TOKEN_FILE)),
            dir,
        }
    }

    /// The files in `$CONFIGS_DIR`, or in [`DEFAULT_CONFIGS_DIR`] when it is
    /// unset or empty (an empty value would otherwise mean the working
    /// directory, which is never where a runtime's secrets belong).
    pub fn from_env() -> Self {
        let dir = std::env::var_os(CONFIGS_DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_CONFIGS_DIR), PathBuf::from);
        Self::in_dir(dir)
    }

    /// The configs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `.platform_inbound_secret`: what the platform presents when it calls
    /// the runtime.
    pub fn inbound_secret(&self) -> &SecretFile {
        &self.inbound_secret
    }

    /// `.auth_token`: what the runtime presents when it calls Tessera.
    pub fn auth_token(&self) -> &SecretFile {
        &self.auth_token
    }
}

/// One secret on disk, with an in-process cache so the hot path (checking
/// every inbound request) does not read the file each time.
///
/// Clones share the cache, so a [`save`](Self::save) through one clone is
/// seen by [`load`](Self::load) on all of them. Writes by another process
/// are seen once the value is not cached (a missing value is never cached)
/// or after [`reset_cache`](Self::reset_cache).
#[derive(Clone)]
pub struct SecretFile {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    cache: Mutex<Option<Secret>>,
}

impl SecretFile {
    /// The secret stored at `path`. Every `SecretFile` of one path in the
    /// process shares one cache, so a save through any of them is seen by
    /// all (e.g. the layer's and the registration's), not only by clones.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        static SHARED: OnceLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = OnceLock::new();
        let path = path.into();
        let mut shared = SHARED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(inner) = shared.get(&path).and_then(Weak::upgrade) {
            return Self { inner };
        }
        shared.retain(|_, inner| inner.strong_count() > 0);
        let inner = Arc::new(Inner {
            path: path.clone(),
            cache: Mutex::new(None),
        });
        shared.insert(path, Arc::downgrade(&inner));
        Self { inner }
    }

    /// Where the secret is stored.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The stored secret, surrounding whitespace trimmed; `None` when the
    /// file is missing, empty, unreadable (including not UTF-8) or too large.
    /// Callers must treat `None` as "reject", never as "skip the check".
    pub fn load(&self) -> Option<Secret> {
        // The lock is held across the read on purpose: a save that renames
        // its file while a stale read is under way resets the cache only
        // after that read has stored its value, so the stale value never
        // outlives the save.
        let mut cache = self.cache();
        if let Some(secret) = cache.as_ref() {
            return Some(secret.clone());
        }
        let secret = read_secret(self.path())?;
        *cache = Some(secret.clone());
        Some(secret)
    }

    /// Writes `secret` and resets the cache, so the next [`load`](Self::load)
    /// returns the new value.
    ///
    /// A secret that is empty or only whitespace is ignored (`Ok`), so a
    /// response without a value never wipes a good one. The parent directory
    /// is created when missing (mode 0700 on Unix). The value goes to a new
    /// temporary file in the same directory, created with mode 0600 (so it is
    /// never readable by others, not even for a moment), is flushed to disk,
    /// then atomically renamed over the target: a concurrent reader sees the
    /// old or the new value, never a partial file. On failure the temporary
    /// file is removed and the target is left as it was.
    pub fn save(&self, secret: &Secret) -> Result<(), SaveError> {
        if secret.expose().trim().is_empty() {
            return Ok(());
        }
        let result = write_atomically(self.path(), secret.expose().as_bytes());
        // Reset even after a failure: the cache must never claim to know
        // better than the disk.
        self.reset_cache();
        result.map_err(|source| SaveError {
            path: self.path().to_owned(),
            source,
        })
    }

    /// Drops the cached value, so the next [`load`](Self::load) reads the
    /// file (e.g. after another process rewrote it).
    pub fn reset_cache(&self) {
        *self.cache() = None;
    }

    fn cache(&self) -> MutexGuard<'_, Option<Secret>> {
        // A panic while the lock was held cannot leave the Option half
        // written, so a poisoned lock is still usable.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the path: the value is secret, and taking the cache lock here
        // could deadlock a caller formatting while it loads.
        f.debug_struct("SecretFile")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// A secret could not be written; the file on disk is unchanged.
#[derive(Debug, thiserror::Error)]
#[error("cannot save a secret to {}", path.display())]
pub struct SaveError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl SaveError {
    /// The file that was being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

fn read_secret(path: &Path) -> Option<Secret> {
    let mut raw = String::new();
    File::open(path)
        .ok()?
        .take(MAX_FILE_LEN + 1)
        .read_to_string(&mut raw)
        .ok()?;
    if raw.len() as u64 > MAX_FILE_LEN {
        return None;
    }
    let value = raw.trim();
    (!value.is_empty()).then(|| Secret::new(value))
}

fn write_atomically(target: &Path, contents: &[u8]) -> io::Result<()> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // `Path::parent` is "" for a bare file name, meaning the working directory.
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    create_dir(dir)?;

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
        match options.open(&path) {
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
    // keeps the mode its owner chose.
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
