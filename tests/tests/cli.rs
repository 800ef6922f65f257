//! The operator commands, run as processes against a database:
//! `tessera migrate`, `tessera gen-secret` and `tessera install-token
//! status|regenerate`, and how they fail without a usable database; and
//! the allocator the binary is built with.

use std::time::{Duration, Instant};

use sea_orm::Database;
use tessera_client::pb::PrincipalKind;
use tessera_client::token::{self, TokenKind};
use tessera_tests::grpc::verify_as;
use tessera_tests::install::{banner_lines, cli_state};
use tessera_tests::secrets::assert_no_fragment;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, run_tessera, run_tessera_async};

#[tokio::test]
async fn migrate_creates_the_sqlite_file_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("fresh.db");
    let url = format!("sqlite:{}", path.display());
    assert!(!path.exists());

    let mut counts = Vec::new();
    for run in 1..=2 {
        let out = run_tessera(&["migrate"], &[("DATABASE_URL", &url)]);
        assert!(
            out.status.success(),
            "migrate run {run} failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(path.exists(), "migrate did not create {}", path.display());
        let conn = Database::connect(url.as_str()).await.expect("open");
        let count = tessera_tests::sql::count(&conn, "SELECT COUNT(*) FROM seaql_migrations").await;
        conn.close().await.expect("close");
        counts.push(count);
    }
    assert!(counts[0] > 0, "no migration recorded");
    assert_eq!(counts[0], counts[1], "second run applied migrations again");
}

#[tokio::test]
async fn migrate_works_on_postgres_and_fails_clearly_when_unreachable() {
    if let Some(db) = TestDatabase::postgres().await {
        for run in 1..=2 {
            let out = run_tessera(&["migrate"], &[("DATABASE_URL", db.url())]);
            assert!(
                out.status.success(),
                "migrate run {run} on PostgreSQL failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    let started = Instant::now();
    let out = run_tessera(
        &["migrate"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nope")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "migrate succeeded without a database"
    );
    assert_eq!(out.status.code(), Some(1), "exit status {:?}", out.status);
    assert!(
        stderr.contains("tessera:") && stderr.to_lowercase().contains("database"),
        "no clear message on stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "migrate panicked:\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?} to give up",
        started.elapsed()
    );
}

/// `tessera gen-secret`, twice: one well-formed `tsr_svc_` secret per run,
/// a different one each time, needing no database, not echoed on stderr.
async fn gen_secrets() -> [String; 2] {
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let out = run_tessera_async(&["gen-secret"], &[]).await;
        assert!(
            out.status.success(),
            "gen-secret failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
        let generated = stdout.trim().to_owned();
        assert!(generated.len() >= 32, "{generated:?}");
        assert_eq!(token::parse(&generated), Ok(TokenKind::Service));
        assert_no_fragment(
            &String::from_utf8_lossy(&out.stderr),
            &generated,
            "gen-secret's stderr",
        );
        secrets.push(generated);
    }
    assert_ne!(secrets[0], secrets[1]);
    secrets.try_into().expect("two secrets")
}

/// Both install-token commands on databases that cannot be opened: a
/// non-zero exit, a message that says the database failed, no banner.
async fn assert_install_token_commands_fail_without_a_database() {
    let missing_dir = tempfile::tempdir().expect("temporary directory");
    let missing = format!(
        "sqlite:{}",
        missing_dir.path().join("no/such/dir/tessera.db").display()
    );
    for url in ["postgres://postgres@127.0.0.1:1/x", missing.as_str()] {
        for action in ["status", "regenerate"] {
            let out = run_tessera_async(&["install-token", action], &[("DATABASE_URL", url)]).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "install-token {action} on {url} must fail"
            );
            assert!(
                stderr.to_lowercase().contains("database"),
                "install-token {action} on {url}: the error says what failed:\n{stderr}"
            );
            assert!(
                banner_lines(&String::from_utf8_lossy(&out.stdout)).is_empty(),
                "no banner on failure"
            );
        }
    }
}

#[tokio::test]
async fn cli_status_gen_secret_and_bad_database_urls() {
    let secrets = gen_secrets().await;

    // status before any server, then while one runs.
    let db = TestDatabase::sqlite();
    assert_eq!(cli_state(db.url()).await, "NOT_ISSUED");

    // The generated secret works as TESSERA_SERVICE_TOKEN_<NAME>.
    let generated = &secrets[0];
    let options = ServerOptions::new().service("GEN", generated);
    let server = TestServer::start(&db, options).await;
    let principal = verify_as(&server, generated, generated)
        .await
        .expect("the generated secret authenticates");
    assert_eq!(principal.kind(), PrincipalKind::Service);
    assert_eq!(principal.email, "gen@system.local");
    assert_eq!(principal.groups, vec!["Admin".to_owned()]);
    assert_no_fragment(&server.stderr(), generated, "the server's logs");
    assert_eq!(cli_state(db.url()).await, "PENDING");
    let out = run_tessera_async(&["install-token", "status"], &[("DATABASE_URL", db.url())]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let issued = stdout
        .lines()
        .find_map(|line| line.strip_prefix("issued_at: "))
        .unwrap_or_else(|| panic!("an issued_at line:\n{stdout}"));
    assert!(issued.starts_with("20"), "issued_at is a date: {stdout}");
    assert!(!stdout.contains("tsr_"), "status shows no token: {stdout}");

    assert_install_token_commands_fail_without_a_database().await;
}

/// The binary allocates with jemalloc, with the settings of
/// `.cargo/config.toml` compiled in (they keep peak RSS near glibc's):
/// jemalloc prints its options at exit when asked to.
#[test]
fn the_binary_allocates_with_jemalloc_as_configured() {
    let out = run_tessera(&["--help"], &[("_RJEM_MALLOC_CONF", "stats_print:true")]);
    assert!(out.status.success(), "{out:?}");
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(
        stats.contains("jemalloc statistics"),
        "not jemalloc: {stats}"
    );
    // Lines read `opt.dirty_decay_ms: 1000 (arenas.dirty_decay_ms: 1000)`.
    let option = |name: &str| {
        stats.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name)).then(|| words.next().map(str::to_owned))?
        })
    };
    assert_eq!(
        option("opt.dirty_decay_ms:").as_deref(),
        Some("1000"),
        "{stats}"
    );
    assert_eq!(
        option("opt.muzzy_decay_ms:").as_deref(),
        Some("0"),
        "{stats}"
    );
}
