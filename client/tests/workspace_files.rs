//! The workspace runtime's secret files: mode, atomic replace, cache, no-op
//! and failure behaviour.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_client::Secret;
use tessera_client::workspace::{AUTH_TOKEN_FILE, INBOUND_SECRET_FILE, SecretFile, WorkspaceFiles};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn loaded(file: &SecretFile) -> Option<String> {
    file.load().map(|secret| secret.expose().to_owned())
}

#[test]
fn save_creates_the_parent_and_a_0600_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fresh/configs");
    let files = WorkspaceFiles::in_dir(&dir);
    assert_eq!(files.inbound_secret().path(), dir.join(INBOUND_SECRET_FILE));
    assert_eq!(files.auth_token().path(), dir.join(AUTH_TOKEN_FILE));

    files
        .inbound_secret()
        .save(&Secret::new("tsr_wsi_one"))
        .unwrap();
    files
        .auth_token()
        .save(&Secret::new("tsr_wsa_one"))
        .unwrap();

    for (name, value) in [
        (INBOUND_SECRET_FILE, "tsr_wsi_one"),
        (AUTH_TOKEN_FILE, "tsr_wsa_one"),
    ] {
        let path = dir.join(name);
        assert_eq!(mode(&path), 0o600, "{name}");
        assert_eq!(fs::read_to_string(&path).unwrap(), value);
    }
    // Directories created for secrets are private too.
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        loaded(files.inbound_secret()).as_deref(),
        Some("tsr_wsi_one")
    );
    // Nothing but the two files is left behind.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
}

#[test]
fn save_overwrites_and_resets_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let file = SecretFile::new(tmp.path().join(INBOUND_SECRET_FILE));
    let other_handle = file.clone();
    file.save(&Secret::new("first")).unwrap();
    assert_eq!(loaded(&other_handle).as_deref(), Some("first"));

    // Another process rewriting the file is not seen while cached...
    fs::write(file.path(), "external").unwrap();
    assert_eq!(loaded(&other_handle).as_deref(), Some("first"));
    // ...until the cache is reset.
    other_handle.reset_cache();
    assert_eq!(loaded(&other_handle).as_deref(), Some("external"));

    // A save through any clone resets the shared cache.
    file.save(&Secret::new("second")).unwrap();
    assert_eq!(loaded(&other_handle).as_deref(), Some("second"));
    assert_eq!(fs::read_to_string(file.path()).unwrap(), "second");
    assert_eq!(mode(file.path()), 0o600);
}

#[test]
fn separate_handles_of_one_path_share_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(INBOUND_SECRET_FILE);
    // Built independently, as a layer and a registration step would be.
    let guard = SecretFile::new(&path);
    let writer = WorkspaceFiles::in_dir(tmp.path());
    writer.inbound_secret().save(&Secret::new("old")).unwrap();
    assert_eq!(loaded(&guard).as_deref(), Some("old"));
    writer
        .inbound_secret()
        .save(&Secret::new("rotated"))
        .unwrap();
    assert_eq!(
        loaded(&guard).as_deref(),
        Some("rotated"),
        "a stale cache would keep the old secret"
    );
}

#[test]
fn a_replaced_file_gets_mode_0600_whatever_the_old_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(INBOUND_SECRET_FILE);
    fs::write(&path, "old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    SecretFile::new(&path).save(&Secret::new("new")).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(fs::read_to_string(&path).unwrap(), "new");
}

#[test]
fn empty_input_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("configs");
    let file = SecretFile::new(dir.join(INBOUND_SECRET_FILE));
    file.save(&Secret::new("")).unwrap();
    assert!(
        !dir.exists(),
        "an empty save must not even create the directory"
    );

    file.save(&Secret::new("kept")).unwrap();
    for empty in ["", " ", "\n", " \t\n"] {
        file.save(&Secret::new(empty)).unwrap();
        assert_eq!(fs::read_to_string(file.path()).unwrap(), "kept");
        assert_eq!(loaded(&file).as_deref(), Some("kept"));
    }
}

#[test]
fn load_is_none_for_missing_empty_or_unreadable_files() {
    let tmp = tempfile::tempdir().unwrap();
    let at = |name: &str| SecretFile::new(tmp.path().join(name));

    assert_eq!(loaded(&at("missing")), None);
    assert_eq!(
        loaded(&SecretFile::new(tmp.path().join("no/such/dir/file"))),
        None
    );

    fs::write(tmp.path().join("empty"), "").unwrap();
    assert_eq!(loaded(&at("empty")), None);
    fs::write(tmp.path().join("blank"), " \n\t\n").unwrap();
    assert_eq!(loaded(&at("blank")), None);

    // Unreadable: a directory, bytes that are not UTF-8, an oversized file.
    // (Mode 000 would not do: the tests may run as root.)
    fs::create_dir(tmp.path().join("a_dir")).unwrap();
    assert_eq!(loaded(&at("a_dir")), None);
    fs::write(tmp.path().join("binary"), [0xff, 0xfe, 0x00]).unwrap();
    assert_eq!(loaded(&at("binary")), None);
    fs::write(tmp.path().join("huge"), "x".repeat(1 << 20)).unwrap();
    assert_eq!(loaded(&at("huge")), None);

    // A missing value is not cached: the file appearing later is seen.
    let later = at("later");
    assert_eq!(loaded(&later), None);
    fs::write(later.path(), "tsr_wsi_late\n").unwrap();
    // Surrounding whitespace (e.g. a trailing newline) is trimmed.
    assert_eq!(loaded(&later).as_deref(), Some("tsr_wsi_late"));
}

#[test]
fn a_failed_save_leaves_no_temporary_file_and_keeps_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    // The target is a non-empty directory, so the final rename fails after
    // the temporary file was written.
    let target = tmp.path().join(INBOUND_SECRET_FILE);
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), "x").unwrap();
    let file = SecretFile::new(&target);

    let err = file.save(&Secret::new("tsr_wsi_secret")).unwrap_err();
    assert_eq!(err.path(), target);
    assert!(!format!("{err} {err:?}").contains("tsr_wsi_secret"));
    let entries: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(entries, [INBOUND_SECRET_FILE], "temporary file left behind");
    assert!(target.join("keep").exists());
    assert_eq!(loaded(&file), None);
}

#[test]
fn a_save_under_a_file_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("configs");
    fs::write(&blocker, "not a directory").unwrap();
    let file = SecretFile::new(blocker.join(INBOUND_SECRET_FILE));
    assert!(file.save(&Secret::new("tsr_wsi_secret")).is_err());
    assert_eq!(fs::read_to_string(&blocker).unwrap(), "not a directory");
}

/// A reader looping while a writer alternates two values of different lengths
/// only ever sees one of them in full, and never a file others could read.
#[test]
fn concurrent_readers_never_see_a_partial_file() {
    const ROUNDS: usize = 100;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let path = dir.join(INBOUND_SECRET_FILE);
    let short = "a".repeat(3000);
    let long = "b".repeat(70_000 - 7000);
    let writer_file = SecretFile::new(&path);
    writer_file.save(&Secret::new(short.clone())).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, path, dir) = (done.clone(), path.clone(), dir.clone());
        let (short, long) = (short.clone(), long.clone());
        std::thread::spawn(move || {
            // Its own handle, so it does not share the writer's cache.
            let reader_file = SecretFile::new(&path);
            let mut reads = 0usize;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let raw = fs::read_to_string(&path).expect("the target must always exist");
                assert!(
                    raw == short || raw == long,
                    "partial read of {} bytes",
                    raw.len()
                );
                reader_file.reset_cache();
                let secret = reader_file.load().expect("load must always find a value");
                assert!(secret.expose() == short || secret.expose() == long);
                // Every file in the directory, temporary ones included, is
                // private from the moment it exists.
                for entry in fs::read_dir(&dir).unwrap().flatten() {
                    if let Ok(meta) = entry.metadata() {
                        assert_eq!(meta.permissions().mode() & 0o077, 0, "{entry:?}");
                    }
                }
                reads += 1;
            }
            reads
        })
    };

    for round in 0..ROUNDS {
        let value = if round % 2 == 0 { &long } else { &short };
        writer_file.save(&Secret::new(value.clone())).unwrap();
    }
    done.store(true, Ordering::Release);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        1,
        "temporary files left behind"
    );
}
