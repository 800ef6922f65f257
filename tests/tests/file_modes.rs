//! The SQLite file holds inbound secrets in plain text: Tessera creates it,
//! its `-wal` and `-shm` files, and a missing directory for them, readable
//! by their owner only, whatever the umask; it warns about an existing file
//! that others may read.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use tessera_tests::{ServerOptions, ServerProcess, TestServer};

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Without a umask that lets others read new files, these tests prove
/// nothing: check that this process has one (the server inherits it).
fn assert_umask_is_permissive(dir: &Path) {
    let probe = dir.join("umask-probe");
    std::fs::write(&probe, b"").expect("probe file");
    assert_ne!(
        mode(&probe) & 0o044,
        0,
        "the test runs under a umask that hides new files already"
    );
    std::fs::remove_file(&probe).expect("remove probe");
}

/// Starts a server as `options` say, waits until it serves (it has written
/// by then, so the WAL exists), and checks `db` and its `-wal` and `-shm`.
/// The server is then killed, not signalled: a signal right after startup
/// can race the installation of its handler.
async fn assert_private_while_serving(options: ServerOptions, db: &Path) {
    let server = TestServer::ready(ServerProcess::spawn(&options), Duration::from_secs(30)).await;
    for suffix in ["", "-wal", "-shm"] {
        let file = db.with_file_name(format!("tessera.db{suffix}"));
        assert_eq!(
            mode(&file),
            0o600,
            "{} is readable by others; logs:\n{}",
            file.display(),
            server.stderr()
        );
    }
}

#[tokio::test]
async fn the_default_sqlite_file_and_its_wal_and_shm_are_private() {
    let dir = tempfile::tempdir().expect("temporary directory");
    assert_umask_is_permissive(dir.path());
    let options = ServerOptions::new()
        .args(&[])
        .current_dir(dir.path())
        .env("TESSERA_LISTEN", "127.0.0.1:0");
    let db = dir.path().join("tessera.db");
    assert_private_while_serving(options, &db).await;
}

#[tokio::test]
async fn a_missing_database_directory_is_created_private() {
    let dir = tempfile::tempdir().expect("temporary directory");
    assert_umask_is_permissive(dir.path());
    let state = dir.path().join("state");
    let db = state.join("tessera.db");
    let options = ServerOptions::new().database_url(&format!("sqlite:{}", db.display()));
    assert_private_while_serving(options, &db).await;
    assert_eq!(mode(&state), 0o700, "{}", state.display());
}

#[tokio::test]
async fn an_existing_database_file_others_may_read_is_warned_about() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("tessera.db");
    // An empty file is an empty SQLite database.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&db)
        .expect("create the database file");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let options = ServerOptions::new().database_url(&format!("sqlite:{}", db.display()));
    // The warning comes before the server is serving.
    let server = TestServer::start_with(options).await;
    let stderr = server.stderr();
    let warning = stderr
        .lines()
        .find(|line| line.contains(r#""level":"WARN""#) && line.contains("chmod 600"))
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    assert!(warning.contains(&db.display().to_string()), "{warning}");
    assert_eq!(mode(&db), 0o644, "the operator's choice is left alone");
}
