//! `TESSERA_AUDIT_LOG`: with it set, every audit entry is also written as
//! one JSON line, to a file (mode 0600) or to standard output beside the
//! install-token banner, which `grep 'INSTALL TOKEN:'` still finds alone;
//! on SQLite and PostgreSQL, through every flow, and never with a secret.

use std::time::Duration;

use tessera_client::token;
use tessera_tests::audit::audit_rows;
use tessera_tests::credentials::{create_access_token, revoke_credential};
use tessera_tests::grpc::{
    consume_ticket, mint_ticket, provision_workspace, register_workspace, verify_bearer,
};
use tessera_tests::install::{BANNER_PREFIX, boot_token, consume_as_ada};
use tessera_tests::{ServerOptions, ServerProcess, TestDatabase, TestServer, scheduler_secret};

tessera_tests::on_both_backends!(
    open =>
    the_copy_in_a_file_is_every_entry_as_json_without_secrets,
    the_copy_on_stdout_leaves_the_banner_alone,
);

/// How long a stopped server may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The fields of every line, sorted.
const FIELDS: [&str; 7] = [
    "action",
    "actor",
    "at",
    "credential_id",
    "outcome",
    "peer",
    "resource",
];
/// A user id that reads like the banner's line.
const BANNER_LOOKALIKE: &str = "INSTALL TOKEN: tsr_ins_fake";

async fn open(db: &TestDatabase) -> String {
    db.url().to_owned()
}

/// Install token, tickets (one replayed, one for a look-alike of the
/// banner), workspaces, access tokens (one revoked, then refused) and a
/// garbage bearer, on a server started with `TESSERA_AUDIT_LOG=target`,
/// then stopped; the server and every secret handed out.
async fn every_flow(url: &str, target: &str) -> (TestServer, Vec<String>) {
    let options = ServerOptions::scheduler()
        .database_url(url)
        .env("TESSERA_AUDIT_LOG", target);
    let mut server = TestServer::start_with(options).await;
    let mut secrets = vec![scheduler_secret()];
    let install = boot_token(&server).await;
    let admin = consume_as_ada(&server, &install)
        .await
        .expect("first admin");
    secrets.extend([install, admin.admin_token.clone()]);

    let mut scheduler = server.scheduler().await;
    for user in ["u1", BANNER_LOOKALIKE] {
        let ticket = mint_ticket(&mut scheduler, user, "", 0)
            .await
            .expect("mint");
        for _ in 0..2 {
            let _ = consume_ticket(&mut scheduler, &ticket, "").await;
        }
        secrets.push(ticket);
    }

    let mut ada = server.client(Some(&admin.admin_token)).await;
    let ws = provision_workspace(&mut ada, "ws-log", "")
        .await
        .expect("provision");
    let registered = register_workspace(&server, &ws.registration_token, "ws-log", false)
        .await
        .expect("register");
    secrets.extend(registered.auth_token);
    secrets.extend([ws.registration_token, ws.platform_inbound_secret]);

    let created = create_access_token(&mut ada, "laptop", 0)
        .await
        .expect("create");
    let id = created.credential.expect("credential").credential_id;
    revoke_credential(&mut ada, &id).await.expect("revoke");
    let _ = verify_bearer(&mut scheduler, &created.access_token).await;
    let _ = verify_bearer(&mut scheduler, "garbage").await;
    secrets.push(created.access_token);

    drop((scheduler, ada));
    server.terminate();
    server.wait_exit_zero(EXIT_TIMEOUT).await;
    (server, secrets)
}

/// Checks each line is a JSON object with exactly [`FIELDS`], its time in
/// RFC 3339 (UTC, to the millisecond), no secret nor a secret's SHA-256
/// anywhere, and that the lines are the audit table's rows.
async fn assert_lines_are_the_table(url: &str, lines: &[&str], secrets: &[String]) {
    let mut copied = Vec::new();
    for line in lines {
        for secret in secrets {
            assert!(
                !line.contains(secret.as_str()) && !line.contains(&token::sha256_hex(secret)),
                "a secret in the copy: {line}"
            );
        }
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        let object = value.as_object().expect("an object");
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys, FIELDS, "{line}");
        let at = object["at"].as_str().expect("at");
        assert!(
            at.len() == 24 && at.as_bytes()[10] == b'T' && at.ends_with('Z'),
            "RFC 3339 to the millisecond: {at}"
        );
        let text = |key: &str| object[key].as_str().expect("text").to_owned();
        copied.push(
            [
                "actor",
                "action",
                "resource",
                "outcome",
                "credential_id",
                "peer",
            ]
            .map(text),
        );
    }
    let conn = sea_orm::Database::connect(url).await.expect("connect");
    let mut table: Vec<[String; 6]> = audit_rows(&conn)
        .await
        .iter()
        .map(|row| row.values().map(str::to_owned))
        .collect();
    assert!(table.len() > 10, "every flow was audited: {}", table.len());
    assert!(table.iter().any(|row| row[2].contains(BANNER_LOOKALIKE)));
    copied.sort();
    table.sort();
    assert_eq!(copied, table, "one line per entry, every entry");
}

async fn the_copy_in_a_file_is_every_entry_as_json_without_secrets(url: String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.jsonl");
    let target = path.to_str().expect("a UTF-8 path");
    let (server, secrets) = every_flow(&url, target).await;
    let copy = std::fs::read_to_string(&path).expect("the copy");
    let lines: Vec<&str> = copy.lines().collect();
    assert_lines_are_the_table(&url, &lines, &secrets).await;
    assert!(
        !server.stdout().contains('{'),
        "nothing of it on standard output"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "created 0600");
    }
}

async fn the_copy_on_stdout_leaves_the_banner_alone(url: String) {
    let (server, secrets) = every_flow(&url, "stdout").await;
    let stdout = server.stdout();
    let (json, other): (Vec<&str>, Vec<&str>) =
        stdout.lines().partition(|line| line.starts_with('{'));
    let install = &secrets[1];
    let grep: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("INSTALL TOKEN:"))
        .collect();
    assert_eq!(
        grep,
        [format!("{BANNER_PREFIX}{install}")],
        "grep finds the banner alone"
    );
    assert!(other.iter().any(|line| line.starts_with(BANNER_PREFIX)));
    assert_lines_are_the_table(&url, &json, &secrets).await;
    assert!(
        json.iter()
            .any(|line| line.contains(r#""action":"install_token.issue""#)),
        "the mint at boot is copied too"
    );
}

/// A copy that cannot be opened stops the server at startup, saying why.
#[tokio::test]
async fn a_copy_that_cannot_be_opened_is_refused_at_startup() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing").join("audit.jsonl");
    let options = ServerOptions::new()
        .database_url(db.url())
        .env("TESSERA_AUDIT_LOG", path.to_str().expect("a UTF-8 path"));
    let mut process = ServerProcess::spawn(&options);
    let status = process.wait_exit(EXIT_TIMEOUT).await;
    assert!(!status.success(), "started without its audit log copy");
    let stderr = process.stderr();
    assert!(stderr.contains("TESSERA_AUDIT_LOG"), "{stderr}");
}
