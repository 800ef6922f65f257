//! The credentials migration on a database made before it, on SQLite and
//! PostgreSQL: existing user access tokens and workspace tokens get records
//! (the user tokens with the default 90-day lifetime from the migration),
//! keep verifying, and `user_tokens` is gone.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tessera_migrations::{Migrator, MigratorTrait};
use tessera_server::store::{
    CredentialKind, CredentialQuery, CredentialStore, SeaStore, Store, WorkspaceStore,
};
use tessera_tests::TestDatabase;

tessera_tests::on_both_backends!(open => tokens_from_before_get_records_and_keep_working);

/// Migrations before the credentials table.
const BEFORE_CREDENTIALS: u32 = 6;
const NINETY_DAYS_MS: i64 = 90 * 86_400_000;

/// A database at the schema before the credentials migration, holding a
/// human with an access token and a registered workspace.
async fn open(db: &TestDatabase) -> (String, DatabaseConnection) {
    // `mode=rwc`: SQLite creates the file, as the server would.
    let url = match db.url() {
        sqlite if sqlite.starts_with("sqlite:") => format!("{sqlite}?mode=rwc"),
        postgres => postgres.to_owned(),
    };
    let conn = Database::connect(&url).await.expect("connect");
    Migrator::up(&conn, Some(BEFORE_CREDENTIALS))
        .await
        .expect("migrate to m0006");
    for sql in [
        "INSERT INTO users (id, email, display_name, kind, created_at) \
         VALUES ('ada', 'ada@example.com', 'Ada', 'human', 10)",
        "INSERT INTO user_tokens (hash, user_id, created_at) \
         VALUES ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'ada', 11)",
        "INSERT INTO workspaces (id, name, inbound_secret, registration_hash, auth_hash, \
         created_at, registered_at, last_registered_at) \
         VALUES ('ws', 'Ws', NULL, 'bbbbbbbbbbbbbbbbbbbbbbbb', 'cccccccccccccccccccccccc', \
         12, 13, 14)",
    ] {
        conn.execute_unprepared(sql).await.expect("seed");
    }
    (db.url().to_owned(), conn)
}

async fn tokens_from_before_get_records_and_keep_working(
    (url, conn): (String, DatabaseConnection),
) {
    let store = SeaStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let now = store.now_ms();

    let query = CredentialQuery {
        include_expired: true,
        include_revoked: true,
        limit: 10,
        ..CredentialQuery::default()
    };
    let records = store.list_credentials(&query).await.expect("list");
    let found: Vec<(&str, CredentialKind, &str, i64)> = records
        .iter()
        .map(|r| (r.id.as_str(), r.kind, r.subject.as_str(), r.created_at))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "usr_aaaaaaaaaaaaaaaa",
                CredentialKind::UserAccess,
                "ada",
                11
            ),
            (
                "wsr_bbbbbbbbbbbbbbbb",
                CredentialKind::WorkspaceRegistration,
                "ws",
                12
            ),
            (
                "wsa_cccccccccccccccc",
                CredentialKind::WorkspaceAuth,
                "ws",
                14
            ),
        ]
    );
    let user_expiry = records[0].expires_at.expect("user tokens now expire");
    assert!(
        (user_expiry - (now + NINETY_DAYS_MS)).abs() < 60_000,
        "90 days from the migration: {user_expiry} vs {now}"
    );
    assert_eq!(
        records[1].expires_at, None,
        "workspace tokens do not expire"
    );

    let (user, state) = store
        .user_by_token("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        .await
        .expect("lookup")
        .expect("the old token still finds its user");
    assert_eq!((user.id.as_str(), user.disabled_at), ("ada", None));
    assert_eq!(state.standing(now), Ok(()));
    let (workspace, _) = store
        .workspace_by_auth("cccccccccccccccccccccccc")
        .await
        .expect("lookup")
        .expect("the old auth token still finds its workspace");
    assert_eq!(workspace.id, "ws");
    assert!(
        store
            .workspace_by_registration("bbbbbbbbbbbbbbbbbbbbbbbb")
            .await
            .expect("lookup")
            .is_some()
    );
    let gone = conn
        .execute_unprepared("SELECT COUNT(*) FROM user_tokens")
        .await;
    assert!(gone.is_err(), "user_tokens is dropped");
}
