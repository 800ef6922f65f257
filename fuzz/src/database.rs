//! The database the `rpc` target's server runs on: a SQLite file by
//! default, or a fresh PostgreSQL database when `TESSERA_FUZZ_POSTGRES_URL`
//! names a maintenance database to create it from. The two backends differ
//! in what text they store (PostgreSQL refuses NUL characters, for one),
//! and only fuzzing on each finds what the other lets through.

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, Database};

/// The variable selecting PostgreSQL.
pub const POSTGRES_VAR: &str = "TESSERA_FUZZ_POSTGRES_URL";
/// The PostgreSQL database, dropped and created again by every fuzzing
/// process: one such process at a time per PostgreSQL.
const POSTGRES_DATABASE: &str = "tessera_fuzz";

/// Prefix of the directories holding the SQLite files, followed by the
/// process id.
const SCRATCH_PREFIX: &str = "tessera-fuzz-";

/// The `DATABASE_URL` of a new, empty database.
pub async fn fresh() -> String {
    match std::env::var(POSTGRES_VAR) {
        Ok(admin_url) => fresh_postgres(&admin_url).await,
        Err(_) => format!("sqlite:{}", scratch_dir().join("fuzz.db").display()),
    }
}

/// A directory of this process for its SQLite file, on tmpfs when there is
/// one: every call writes audit rows, and a disk's fsyncs would take most
/// of the time of an input. A fuzzing process never removes its own (it
/// ends by `exit` or `abort`, without destructors), so this removes those
/// of processes that are gone.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|name| name.strip_prefix(SCRATCH_PREFIX));
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
    dir
}

async fn fresh_postgres(admin_url: &str) -> String {
    let admin = Database::connect(admin_url)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to {POSTGRES_VAR}: {err}"));
    for sql in [
        format!("DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {POSTGRES_DATABASE}"),
    ] {
        admin
            .execute_unprepared(&sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
    let _ = admin.close().await;
    match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{POSTGRES_DATABASE}"),
        None => panic!("{POSTGRES_VAR} must end in /<database>"),
    }
}
