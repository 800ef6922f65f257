//! What the server writes out: logs on standard error, as JSON objects or
//! human lines (`TESSERA_LOG_FORMAT`), and no issued secret anywhere it
//! writes, even at `trace`, except the install-token banner line on
//! standard output.

use std::time::Duration;

use tessera_client::Client;
use tessera_client::pb;
use tessera_tests::grpc::{
    consume_install_token, consume_ticket, internal_credential, mint_ticket, provision_workspace,
    register_workspace, verify_bearer,
};
use tessera_tests::install::{BANNER_PREFIX, boot_token};
use tessera_tests::{ServerOptions, TestDatabase, TestServer, service_secret, strip_ansi};

/// How long a stopped server may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------

/// Runs `tessera serve` (address from `TESSERA_LISTEN`) with logs in
/// `format`, some traffic and a short secret to warn about, until SIGTERM;
/// checks no secret and no log line went to stdout. Returns (stdout, stderr).
async fn run_and_collect_logs(format: &str) -> (String, String) {
    let db = TestDatabase::sqlite();
    let secret = service_secret("logger");
    let options = ServerOptions::new()
        .args(&["serve"])
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .log_format(format)
        .service("LOGGER", &secret)
        .service("SHORT", "too-short");
    let mut server = TestServer::start(&db, options).await;
    // Some traffic, including a failure that gets logged.
    let mut client = server.client(Some(&secret)).await;
    let _ = verify_bearer(&mut client, "garbage").await;
    let _ = verify_bearer(&mut client, &secret).await;
    drop(client);

    server.terminate();
    server.wait_exit_zero(EXIT_TIMEOUT).await;
    let (stdout, stderr) = (server.stdout(), server.stderr());
    for stream in [&stdout, &stderr] {
        assert!(
            !stream.contains(&secret),
            "a service secret was written out"
        );
    }
    assert!(
        !stdout.contains("listening"),
        "logs belong on stderr, not stdout:\n{stdout}"
    );
    (stdout, stderr)
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_on_stderr() {
    let (_, stderr) = run_and_collect_logs("json").await;
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "too few log lines:\n{stderr}");
    let mut messages = Vec::new();
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a JSON log line ({err}): {line}"));
        assert!(value.is_object(), "not a JSON object: {line}");
        assert!(value.get("level").is_some(), "no level: {line}");
        assert!(value.get("timestamp").is_some(), "no timestamp: {line}");
        if let Some(message) = value.pointer("/fields/message").and_then(|m| m.as_str()) {
            messages.push(message.to_owned());
        }
    }
    assert!(messages.iter().any(|m| m == "listening"), "{messages:?}");
    assert!(
        stderr.contains("TESSERA_SERVICE_TOKEN_SHORT"),
        "the short-secret warning is logged:\n{stderr}"
    );
}

#[tokio::test]
async fn pretty_logs_are_human_lines_on_stderr() {
    let (_, stderr) = run_and_collect_logs("pretty").await;
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "too few log lines:\n{stderr}");
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_err(),
            "a JSON line in pretty logs: {line}"
        );
    }
    let plain = strip_ansi(&stderr);
    assert!(
        plain
            .lines()
            .any(|l| l.contains("INFO") && l.contains("listening")),
        "no human-readable `listening` line:\n{plain}"
    );
    assert!(
        plain.contains("TESSERA_SERVICE_TOKEN_SHORT"),
        "the short-secret warning is logged:\n{plain}"
    );
}

// ---------------------------------------------------------------------------
// No secret in the output, at trace level
// ---------------------------------------------------------------------------

/// Tickets: mint, consume, replay, wrong purpose; returns the tickets.
async fn use_tickets(service: &mut Client) -> Vec<String> {
    let mut tickets = Vec::new();
    for purpose in ["ws-upgrade", "other"] {
        let ticket = mint_ticket(service, "u1", "ws-upgrade", 0)
            .await
            .expect("mint");
        for _ in 0..2 {
            let _ = consume_ticket(service, &ticket, purpose).await;
        }
        tickets.push(ticket);
    }
    tickets
}

/// The internal credential, used as a ticket and as a caller; returns it.
async fn use_internal_credential(server: &TestServer, service: &mut Client) -> String {
    let internal = internal_credential(service).await.expect("internal");
    consume_ticket(service, &internal, "")
        .await
        .expect("internal as ticket");
    let mut as_internal = server.client(Some(&internal)).await;
    let _ = verify_bearer(&mut as_internal, &service_secret("scheduler")).await;
    internal
}

/// The install token from the banner, traded for an admin token that is
/// then verified; returns (install token, admin token).
async fn use_install_token(server: &TestServer, service: &mut Client) -> (String, String) {
    let install = boot_token(server).await;
    let mut anonymous = server.client(None).await;
    let admin = consume_install_token(&mut anonymous, &install, "ada@example.com", "Ada")
        .await
        .expect("consume install token");
    let _ = verify_bearer(service, &admin.admin_token).await;
    (install, admin.admin_token)
}

/// Workspaces: provision, register, rotate, verify, read back; returns
/// every secret they handed out.
async fn use_workspaces(server: &TestServer, service: &mut Client) -> Vec<String> {
    let provisioned = provision_workspace(service, "ws-1", "")
        .await
        .expect("provision");
    let mut secrets = Vec::new();
    for reissue in [false, true] {
        let registered =
            register_workspace(server, &provisioned.registration_token, "ws-1", reissue)
                .await
                .expect("register");
        secrets.extend(registered.auth_token);
    }
    for token in &secrets {
        let _ = verify_bearer(service, token).await;
    }
    service
        .get_inbound_secret(pb::GetInboundSecretRequest {
            workspace_id: "ws-1".into(),
        })
        .await
        .expect("inbound");
    secrets.extend([
        provisioned.registration_token,
        provisioned.platform_inbound_secret,
    ]);
    secrets
}

/// None of `secrets` in `stderr` or `stdout`, and the install token only in
/// its banner line.
#[track_caller]
fn assert_only_the_banner_shows_a_secret(
    stdout: &str,
    stderr: &str,
    secrets: &[String],
    install: &str,
) {
    for value in secrets {
        assert!(
            !stderr.contains(value.as_str()),
            "a secret reached the logs: {}…",
            &value[..8]
        );
        assert!(
            !stdout.contains(value.as_str()),
            "a secret reached stdout: {}…",
            &value[..8]
        );
    }
    let mentions: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains(install))
        .collect();
    assert_eq!(
        mentions,
        vec![format!("{BANNER_PREFIX}{install}")],
        "only the banner line"
    );
    assert!(
        !stderr.contains(install),
        "the install token reached the logs"
    );
}

/// Every flow on a server started with `options` (a database URL among
/// them), logs at `trace`; then nothing the server wrote holds a secret or
/// any of `passwords`, and the install token only in its banner line.
async fn every_flow_at_trace_level(options: ServerOptions, passwords: &[&str]) {
    let secret = service_secret("scheduler");
    let next = service_secret("next");
    let options = options
        .service("SCHEDULER", &format!("{secret},{next}"))
        .service("TYPO", "too-short-secret")
        .env("RUST_LOG", "trace");
    let mut server = TestServer::start_with(options).await;
    let mut service = server.client(Some(&secret)).await;
    let mut secrets = vec![secret.clone(), next.clone(), "too-short-secret".to_owned()];

    secrets.extend(use_tickets(&mut service).await);
    secrets.push(use_internal_credential(&server, &mut service).await);
    let (install, admin_token) = use_install_token(&server, &mut service).await;
    secrets.push(admin_token);
    secrets.extend(use_workspaces(&server, &mut service).await);

    // Stop the server so that its shutdown logs are captured too.
    server.terminate();
    server.wait_exit_zero(EXIT_TIMEOUT).await;
    let (stderr, stdout) = (server.stderr(), server.stdout());
    assert!(
        stderr.lines().count() > 50,
        "trace logging produced output:\n{stderr}"
    );
    assert_only_the_banner_shows_a_secret(&stdout, &stderr, &secrets, &install);
    for password in passwords {
        assert!(
            !stderr.contains(password) && !stdout.contains(password),
            "the database password {password} was written out"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_at_trace_level() {
    let db = TestDatabase::sqlite();
    every_flow_at_trace_level(ServerOptions::new().database_url(db.url()), &[]).await;
}

/// On PostgreSQL, with a password in the URL twice, in its user part and as
/// `?password=` (trust authentication ignores both): neither is written out,
/// not even by sea-orm's and sqlx's own `trace` output (with the default
/// `sslmode`, TLS is tried and logs inside the span of sea-orm's connect,
/// whose fields are its options).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_database_password_reaches_the_logs_at_trace_level() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let passwords = ["Userinfo-Pw-7f3k2", "Query-Pw-9x1q4"];
    let url = db.url();
    assert!(url.contains('@') && !url.contains('?'), "{url}");
    let url = format!(
        "{}?application_name=tessera&password={}",
        url.replacen('@', &format!(":{}@", passwords[0]), 1),
        passwords[1]
    );
    every_flow_at_trace_level(ServerOptions::new().database_url(&url), &passwords).await;
}
