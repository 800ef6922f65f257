//! `TESSERA_SERVICE_TOKENS_FILE`: service secrets from a file instead of
//! the environment, so that they can change while the server runs (it
//! reads the file again on SIGHUP).
//!
//! One secret per line, spelt as the environment spells it,
//! `TESSERA_SERVICE_TOKEN_<NAME>=<secret>`, so a line moves between the
//! two unchanged, and the `.env` file `deploy/first-boot.sh` writes can
//! serve as it is: lines with other keys (`POSTGRES_PASSWORD=…`) are
//! skipped, as are blank lines and lines starting with `#`; a `#` inside
//! a value is part of the secret. A bare `NAME=secret` is not a service
//! secret for the same reason. Values follow the environment's rules
//! (trimmed, `current,previous`, shorter than 32 characters disabled with
//! a warning). A line without `=`, a `TESSERA_SERVICE_TOKEN_` key with no
//! valid name, or a name given twice refuses the whole file: a typo must
//! not quietly leave a service without its secret. Errors name the file
//! and the line, never a value.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::service_secrets::{ENV_PREFIX, ServiceSecrets};

/// Largest file read: far above any real list of services, and a bound on
/// what a wrong path (a device, a log file) can make the server read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a tokens file was refused. Shows no secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokensFileError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than any tokens file should be.
    #[error("{}: larger than {MAX_FILE_BYTES} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A line is not a service secret.
    #[error("{}: line {line}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The service secrets the process starts with: from `file` when set (the
/// `TESSERA_SERVICE_TOKEN_*` variables are then ignored, with a warning
/// naming them), otherwise from the environment.
pub(crate) fn configured(file: Option<&Path>) -> Result<ServiceSecrets, TokensFileError> {
    let Some(file) = file else {
        return Ok(ServiceSecrets::from_env());
    };
    let mut ignored: Vec<String> = std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| key.starts_with(ENV_PREFIX))
        .collect();
    if !ignored.is_empty() {
        ignored.sort();
        tracing::warn!(
            variables = %ignored.join(","),
            "TESSERA_SERVICE_TOKENS_FILE is set: these variables are ignored"
        );
    }
    read(file)
}

/// Reads and parses the tokens file at `path`.
pub(crate) fn read(path: &Path) -> Result<ServiceSecrets, TokensFileError> {
    let read_error = |source| TokensFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = crate::reload::open_regular(path).map_err(read_error)?;
    warn_if_shared(path, &file);
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(TokensFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    parse(&text).map_err(|(line, reason)| TokensFileError::Line {
        path: path.to_owned(),
        line,
        reason,
    })
}

/// The secrets in `text`, or the first bad line and why it is bad.
fn parse(text: &str) -> Result<ServiceSecrets, (usize, &'static str)> {
    let mut seen = HashSet::new();
    let mut vars = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err((
                line_no,
                "no `=`: expected TESSERA_SERVICE_TOKEN_<NAME>=<secret>",
            ));
        };
        let key = key.trim();
        let Some(name) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if name.is_empty() {
            return Err((line_no, "key is not TESSERA_SERVICE_TOKEN_<NAME>"));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((line_no, "a service name has only letters, digits and `_`"));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err((line_no, "this service is already listed above"));
        }
        vars.push((key.to_owned(), value.to_owned()));
    }
    Ok(ServiceSecrets::from_vars(vars))
}

/// Warns when the file is shared more widely than a secret should be: it may
/// be private to its owner (0600), or readable by one group when root owns it
/// (0640 root:group, how a service running under a dynamic user with that
/// supplementary group reads it, as deploy/systemd/tessera.service does).
fn warn_if_shared(path: &Path, file: &std::fs::File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if let Ok(meta) = file.metadata()
            && !private_enough(meta.permissions().mode(), meta.uid())
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "service tokens file is readable by others or writable by its group; \
                 chmod 600 it (or 640, owned by root, for the service's group)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, file);
}

/// Whether `mode` and `owner` keep a secrets file private: no access for
/// others, and at most read access for the group, only when root owns it.
fn private_enough(mode: u32, owner: u32) -> bool {
    let group_may = if owner == 0 { 0o040 } else { 0 };
    mode & 0o077 & !group_may == 0
}

#[cfg(test)]
mod tests {
    use super::{parse, private_enough};

    #[test]
    fn group_read_is_private_enough_only_when_root_owns_the_file() {
        assert!(private_enough(0o100600, 1000));
        assert!(private_enough(0o100400, 0));
        assert!(private_enough(0o100640, 0));
        assert!(!private_enough(0o100640, 1000));
        assert!(!private_enough(0o100660, 0));
        assert!(!private_enough(0o100644, 0));
        assert!(!private_enough(0o100604, 1000));
        assert!(!private_enough(0o100650, 0));
    }

    const GOOD: &str = "0123456789abcdef0123456789abcdef";
    const NEXT: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn comments_blanks_pairs_and_trimming() {
        let text = format!(
            "# services\n\n  TESSERA_SERVICE_TOKEN_SCHEDULER = {GOOD} \n\
             TESSERA_SERVICE_TOKEN_DATA_SYNC={NEXT},{NEXT}x\nTESSERA_SERVICE_TOKEN_SHORT=todo\n"
        );
        let secrets = parse(&text).unwrap();
        let names: Vec<_> = secrets.accounts().iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["data_sync", "scheduler"]);
        let found = |secret: &str| secrets.find(secret).map(|m| m.account.name.clone());
        assert_eq!(found(GOOD).as_deref(), Some("scheduler"));
        assert_eq!(found(&format!("{NEXT}x")).as_deref(), Some("data_sync"));
        assert!(secrets.find("todo").is_none());
    }

    #[test]
    fn other_keys_are_skipped() {
        let text = format!(
            "POSTGRES_PASSWORD=x\nSCHEDULER={GOOD}\nTESSERA_SERVICE_TOKENS_FILE=/x\n\
             TESSERA_SERVICE_TOKEN_A={NEXT}\n"
        );
        let secrets = parse(&text).unwrap();
        assert!(secrets.find(GOOD).is_none());
        assert_eq!(secrets.accounts().len(), 1);
    }

    #[test]
    fn bad_lines_refuse_the_file_by_line_number() {
        let cases = [
            (format!("# x\nTESSERA_SERVICE_TOKEN_A {GOOD}"), 2),
            (format!("TESSERA_SERVICE_TOKEN_={GOOD}"), 1),
            (format!("TESSERA_SERVICE_TOKEN_A-B={GOOD}"), 1),
            (
                format!("TESSERA_SERVICE_TOKEN_A={GOOD}\nTESSERA_SERVICE_TOKEN_a={NEXT}"),
                2,
            ),
        ];
        for (text, line) in cases {
            let err = parse(&text).err().map(|(line, _)| line);
            assert_eq!(err, Some(line), "{text}");
        }
    }
}
