//! `deploy/first-boot.sh` driven as an operator would, and the files it
//! writes read back.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::binary;

/// The script in this checkout.
pub fn first_boot_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/first-boot.sh")
}

/// Runs `sh deploy/first-boot.sh args…` in `dir`; with `tessera_bin`, the
/// secrets come from `tessera gen-secret`, else (its stand-in fails) from
/// /dev/urandom.
pub fn first_boot(dir: &Path, args: &[&str], tessera_bin: bool) -> Output {
    let mut command = Command::new("sh");
    command
        .arg(first_boot_script())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null());
    if tessera_bin {
        command.env("TESSERA_BIN", binary());
    } else {
        command.env("TESSERA_BIN", "false");
    }
    let output = command.output().expect("run first-boot.sh");
    assert!(
        output.status.success(),
        "first-boot.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The `NAME=value` lines of a .env file, comments and blank lines skipped.
pub fn read_env(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .expect("read .env")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line.split_once('=').expect("NAME=value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// The last value of `key` in `env`; panics when it is missing.
pub fn value(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{key} missing from .env"))
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("stat .env")
        .permissions()
        .mode()
        & 0o777
}
