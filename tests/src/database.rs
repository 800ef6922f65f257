//! Fresh databases for tests: a SQLite file in a temporary directory, or a
//! new database on the local PostgreSQL, dropped afterwards.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tempfile::TempDir;

/// PostgreSQL to create test databases on (override with
/// `TESSERA_TEST_POSTGRES_URL`).
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database that exists for one test.
pub enum TestDatabase {
    /// A SQLite file inside a temporary directory.
    Sqlite {
        /// Keeps the directory alive.
        dir: TempDir,
        /// `sqlite:<path>`.
        url: String,
    },
    /// A PostgreSQL database created for the test.
    Postgres {
        /// Its name.
        name: String,
        /// URL of the test database.
        url: String,
        /// URL of the maintenance database it was created from.
        admin_url: String,
    },
}

impl TestDatabase {
    /// A new SQLite file (not created until the server opens it).
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite:{}", dir.path().join("tessera.db").display());
        TestDatabase::Sqlite { dir, url }
    }

    /// A new PostgreSQL database, or `None` when PostgreSQL is unreachable
    /// and not required. It is required when `TESSERA_REQUIRE_POSTGRES=1`
    /// or `CI` is set, as in `.ci/run`: there a missing PostgreSQL fails.
    pub async fn postgres() -> Option<Self> {
        let admin_url =
            std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        let admin = match connect(&admin_url).await {
            Ok(admin) => admin,
            Err(err) if !postgres_required() => {
                eprintln!(
                    "SKIPPED: PostgreSQL not reachable at {admin_url} ({err}); set TESSERA_REQUIRE_POSTGRES=1 to fail instead"
                );
                return None;
            }
            Err(err) => panic!("PostgreSQL is required but not reachable at {admin_url}: {err}"),
        };
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tessera_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("TESSERA_TEST_POSTGRES_URL must end in /<database>"),
        };
        Some(TestDatabase::Postgres {
            name,
            url,
            admin_url,
        })
    }

    /// A new PostgreSQL database, for tests that mean nothing without one:
    /// they fail, not skip, when PostgreSQL is unreachable.
    pub async fn postgres_required() -> Self {
        Self::postgres()
            .await
            .expect("this test needs PostgreSQL (127.0.0.1:5432 or TESSERA_TEST_POSTGRES_URL)")
    }

    /// The `DATABASE_URL` to give the server.
    pub fn url(&self) -> &str {
        match self {
            TestDatabase::Sqlite { url, .. } | TestDatabase::Postgres { url, .. } => url,
        }
    }

    /// A direct connection, for looking at what the server stored.
    pub async fn connect(&self) -> DatabaseConnection {
        connect(self.url()).await.expect("connect to test database")
    }

    /// Runs SQL on the maintenance database (PostgreSQL only), e.g. to take
    /// the test database away and give it back.
    pub async fn admin(&self, sql: &str) {
        let TestDatabase::Postgres { admin_url, .. } = self else {
            panic!("admin() is for PostgreSQL databases");
        };
        let admin = connect(admin_url).await.expect("connect to PostgreSQL");
        admin.execute_unprepared(sql).await.expect("admin SQL");
        let _ = admin.close().await;
    }

    /// Takes the PostgreSQL database away from its clients: no new
    /// connections, and every open session terminated.
    pub async fn refuse_connections(&self) {
        let name = self
            .name()
            .expect("refuse_connections() is for PostgreSQL databases");
        self.admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            .await;
        self.admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await;
    }

    /// Gives the database back after [`refuse_connections`](Self::refuse_connections).
    pub async fn allow_connections(&self) {
        let name = self
            .name()
            .expect("allow_connections() is for PostgreSQL databases");
        self.admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            .await;
    }

    /// Name of the PostgreSQL database.
    pub fn name(&self) -> Option<&str> {
        match self {
            TestDatabase::Postgres { name, .. } => Some(name),
            TestDatabase::Sqlite { .. } => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let TestDatabase::Postgres {
            name, admin_url, ..
        } = self
        else {
            return;
        };
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let admin_url = admin_url.clone();
        // Drop runs outside any async context we can borrow: use a thread
        // with its own runtime, and wait for it.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(admin) = connect(&admin_url).await {
                        let _ = admin.execute_unprepared(&sql).await;
                        let _ = admin.close().await;
                    }
                });
            }
        })
        .join();
    }
}

fn postgres_required() -> bool {
    std::env::var("TESSERA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

async fn connect(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .connect_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(3))
        .max_connections(2)
        .sqlx_logging(false);
    Database::connect(options).await
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
