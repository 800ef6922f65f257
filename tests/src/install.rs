//! The first-admin install token as a server prints it, and the first admin
//! made from it.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection};
use tessera_client::pb;
use tessera_client::token::{self, TokenKind};

use crate::TestServer;
use crate::grpc::consume_install_token;

/// The grep-friendly banner line is this prefix followed by the token.
pub const BANNER_PREFIX: &str = "INSTALL TOKEN: ";

/// How long a banner may take to be read from a server's standard output.
const BANNER_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of `stdout` that mention the install token banner at all.
pub fn banner_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| line.contains("INSTALL TOKEN"))
        .collect()
}

/// The token of every banner line in `stdout`; panics on a line that
/// mentions the banner without starting with [`BANNER_PREFIX`].
pub fn banner_tokens(stdout: &str) -> Vec<String> {
    banner_lines(stdout)
        .into_iter()
        .map(|line| {
            line.strip_prefix(BANNER_PREFIX)
                .unwrap_or_else(|| panic!("banner line {line:?}"))
                .to_owned()
        })
        .collect()
}

/// Waits (at most 10 s) until `stdout()` holds at least `n` banner lines,
/// and returns what it holds then. The banner is printed before the server
/// reports SERVING, but standard output is read by another thread.
pub async fn wait_for_banners(stdout: impl Fn() -> String, n: usize) -> String {
    let deadline = Instant::now() + BANNER_TIMEOUT;
    loop {
        let text = stdout();
        if banner_lines(&text).len() >= n || Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The token of the one banner line in `stdout`, a well-formed install
/// token; panics otherwise.
#[track_caller]
pub fn token_in_banner(stdout: &str) -> String {
    let lines = banner_lines(stdout);
    assert_eq!(lines.len(), 1, "exactly one banner line; stdout:\n{stdout}");
    let token = lines[0]
        .strip_prefix(BANNER_PREFIX)
        .unwrap_or_else(|| panic!("the line starts with {BANNER_PREFIX:?}: {:?}", lines[0]));
    assert_eq!(
        token::parse(token),
        Ok(TokenKind::Install),
        "banner shows a well-formed tsr_ins_ token: {token:?}"
    );
    token.to_owned()
}

/// The token of the boot banner of `server`, waiting for it to be read;
/// panics unless there is exactly one.
pub async fn boot_token(server: &TestServer) -> String {
    token_in_banner(&wait_for_banners(|| server.stdout(), 1).await)
}

/// The e-mail of the first admin the tests make.
pub const ADA_EMAIL: &str = "ada@example.com";
/// The display name of the first admin the tests make.
pub const ADA_NAME: &str = "Ada Lovelace";

/// ConsumeInstallToken of `install_token` for Ada, anonymously, on a new
/// connection.
pub async fn consume_as_ada(
    server: &TestServer,
    install_token: &str,
) -> Result<pb::ConsumeInstallTokenResponse, tessera_client::tonic::Status> {
    let mut anonymous = server.client(None).await;
    consume_install_token(&mut anonymous, install_token, ADA_EMAIL, ADA_NAME).await
}

/// Makes Ada the first admin with the boot banner's token.
pub async fn bootstrap_admin(server: &TestServer) -> pb::ConsumeInstallTokenResponse {
    let install_token = boot_token(server).await;
    consume_as_ada(server, &install_token)
        .await
        .expect("the boot token makes the first admin")
}

/// IssueInstallToken{force} on `client`.
pub async fn issue_install_token(
    client: &mut tessera_client::Client,
    force: bool,
) -> Result<pb::IssueInstallTokenResponse, tessera_client::tonic::Status> {
    let request = pb::IssueInstallTokenRequest { force };
    Ok(client.issue_install_token(request).await?.into_inner())
}

/// `tessera install-token status` on the database at `url`: the value of
/// its one `state:` line.
pub async fn cli_state(url: &str) -> String {
    let out =
        crate::run_tessera_async(&["install-token", "status"], &[("DATABASE_URL", url)]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "install-token status failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let states: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("state: "))
        .collect();
    assert_eq!(states.len(), 1, "one state line:\n{stdout}");
    states[0].trim().to_owned()
}

/// Log message of the boot-time minting event.
pub const MINTED_EVENT: &str = "install token minted";

/// The JSON log events of `stderr` whose message starts with
/// [`MINTED_EVENT`].
pub fn minted_events(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            event
                .pointer("/fields/message")
                .and_then(|m| m.as_str())
                .is_some_and(|m| m.starts_with(MINTED_EVENT))
        })
        .collect()
}

/// GetInstallTokenStatus without credentials.
pub async fn install_status(server: &TestServer) -> pb::GetInstallTokenStatusResponse {
    let mut client = server.client(None).await;
    client
        .get_install_token_status(pb::GetInstallTokenStatusRequest {})
        .await
        .expect("GetInstallTokenStatus")
        .into_inner()
}

/// `(hash, consumed_at)` of every row of `install_token`.
pub async fn install_rows(conn: &DatabaseConnection) -> Vec<(String, Option<i64>)> {
    crate::sql::rows(conn, "SELECT hash, consumed_at FROM install_token")
        .await
        .iter()
        .map(|row| {
            (
                row.try_get_by_index::<String>(0).expect("hash"),
                row.try_get_by_index::<Option<i64>>(1).expect("consumed_at"),
            )
        })
        .collect()
}

/// How many human users are stored.
pub async fn humans(conn: &DatabaseConnection) -> i64 {
    crate::sql::count(conn, "SELECT COUNT(*) FROM users WHERE kind = 'human'").await
}

/// How many user access tokens are stored.
pub async fn user_tokens(conn: &DatabaseConnection) -> i64 {
    let sql = "SELECT COUNT(*) FROM credentials WHERE kind = 'user_access'";
    crate::sql::count(conn, sql).await
}

/// Inserts a human user `id` with `email` straight into the database (a
/// row made before Tessera, or by hand).
pub async fn insert_human(conn: &DatabaseConnection, id: &str, email: &str) {
    let sql = format!(
        "INSERT INTO users (id, email, display_name, kind, created_at) \
         VALUES ('{id}', '{email}', 'Someone', 'human', 0)"
    );
    conn.execute_unprepared(&sql)
        .await
        .expect("insert a human user");
}
