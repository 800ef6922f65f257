//! The workspace runtime's secret files where other users could swap them:
//! a directory others may write to (without the sticky bit) is refused on
//! save and on load, a symlink at a secret's path is never followed, and
//! the in-process cache knows a file by its canonical path.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use tessera_client::Secret;
use tessera_client::workspace::{INBOUND_SECRET_FILE, SecretFile};

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn loaded(file: &SecretFile) -> Option<String> {
    file.load().map(|secret| secret.expose().to_owned())
}

#[test]
fn a_directory_others_may_write_to_without_sticky_is_refused() {
    for mode in [0o775, 0o757, 0o777] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("configs");
        fs::create_dir(&dir).unwrap();
        chmod(&dir, mode);
        let file = SecretFile::new(dir.join(INBOUND_SECRET_FILE));

        let err = file.save(&Secret::new("tsr_wsi_mine")).unwrap_err();
        let message = err.io_error().to_string();
        assert!(
            message.contains("writable by other users")
                && message.contains(&dir.display().to_string()),
            "{mode:o}: {message}"
        );
        assert!(!file.path().exists(), "{mode:o}: nothing was written");

        // A secret someone else put there is not believed either.
        fs::write(file.path(), "tsr_wsi_planted").unwrap();
        assert_eq!(loaded(&file), None, "{mode:o}");
        let err = file.try_load().unwrap_err();
        assert!(
            err.to_string().contains(&file.path().display().to_string()),
            "{err}"
        );
        assert!(
            err.io_error()
                .to_string()
                .contains("writable by other users"),
            "{err:?}"
        );
    }
}

#[test]
fn a_sticky_directory_like_tmp_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shared");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o1777);
    let file = SecretFile::new(dir.join(INBOUND_SECRET_FILE));
    file.save(&Secret::new("tsr_wsi_sticky")).unwrap();
    file.reset_cache();
    assert_eq!(loaded(&file).as_deref(), Some("tsr_wsi_sticky"));
    assert_eq!(
        file.try_load()
            .unwrap()
            .map(|s| s.expose().to_owned())
            .as_deref(),
        Some("tsr_wsi_sticky")
    );
}

#[test]
fn a_symlink_at_the_secret_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::write(&elsewhere, "tsr_wsi_elsewhere").unwrap();
    let path = tmp.path().join(INBOUND_SECRET_FILE);
    symlink(&elsewhere, &path).unwrap();
    let file = SecretFile::new(&path);

    assert_eq!(loaded(&file), None, "the link was followed");
    assert!(
        file.try_load().is_err(),
        "a symlink is an error, not a missing file"
    );

    // Saving replaces the link itself and never writes through it.
    file.save(&Secret::new("tsr_wsi_mine")).unwrap();
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "tsr_wsi_elsewhere");
    assert!(
        !fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(loaded(&file).as_deref(), Some("tsr_wsi_mine"));
}

#[test]
fn two_spellings_of_one_directory_share_a_cache_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("configs");
    fs::create_dir_all(dir.join("sub")).unwrap();
    symlink(&dir, tmp.path().join("alias")).unwrap();
    let plain = SecretFile::new(dir.join(INBOUND_SECRET_FILE));
    plain.save(&Secret::new("tsr_wsi_first")).unwrap();
    assert_eq!(loaded(&plain).as_deref(), Some("tsr_wsi_first"));

    for other in [
        tmp.path().join("alias").join(INBOUND_SECRET_FILE),
        dir.join("sub/..").join(INBOUND_SECRET_FILE),
        dir.join(".").join(INBOUND_SECRET_FILE),
    ] {
        let other = SecretFile::new(&other);
        // A write by another process is not seen through the shared entry...
        fs::write(plain.path(), "tsr_wsi_external").unwrap();
        assert_eq!(
            loaded(&other).as_deref(),
            Some("tsr_wsi_first"),
            "{other:?} has its own cache"
        );
        // ...and a save through either spelling is seen through the other.
        other.save(&Secret::new("tsr_wsi_rotated")).unwrap();
        assert_eq!(
            loaded(&plain).as_deref(),
            Some("tsr_wsi_rotated"),
            "{other:?}"
        );
        plain.save(&Secret::new("tsr_wsi_first")).unwrap();
        assert_eq!(
            loaded(&other).as_deref(),
            Some("tsr_wsi_first"),
            "{other:?}"
        );
    }
}
