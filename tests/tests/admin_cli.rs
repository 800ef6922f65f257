//! The remote admin commands of `tessera` end to end: each subcommand
//! against a real server, human and `--json` output, and the exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tessera_tests::credentials::WithAdmin;
use tessera_tests::install::boot_token;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, binary, scheduler_secret};

/// Runs `tessera args…` against `setup`'s server as `token`, with `stdin`.
fn tessera(setup: &WithAdmin, token: &str, args: &[&str], stdin: &str) -> Output {
    tessera_at(&setup.server, token, args, stdin)
}

/// Runs `tessera args…` against `server` as `token`, with `stdin`.
fn tessera_at(server: &TestServer, token: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .env_clear()
        .env("TESSERA_ADDR", server.addr.to_string())
        .env("TESSERA_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for tessera")
}

/// `tessera args… --json` as `token`, which must succeed; its document.
fn json(setup: &WithAdmin, token: &str, args: &[&str]) -> Value {
    json_with_stdin(setup, token, args, "")
}

fn json_with_stdin(setup: &WithAdmin, token: &str, args: &[&str], stdin: &str) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = tessera(setup, token, &args, stdin);
    assert!(
        out.status.success(),
        "tessera {args:?}: {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

async fn setup() -> (TestDatabase, WithAdmin) {
    let db = TestDatabase::sqlite();
    let setup = WithAdmin::start(&db, ServerOptions::scheduler()).await;
    (db, setup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_commands_work_end_to_end() {
    let (_db, setup) = setup().await;
    let (ada, service) = (setup.admin_token.clone(), scheduler_secret());

    let created = json(
        &setup,
        &ada,
        &["token", "create", "--name", "laptop", "--ttl", "30d"],
    );
    let token = text(&created["access_token"]).to_owned();
    assert!(token.starts_with("tsr_usr_"));
    let id = text(&created["credential"]["credential_id"]).to_owned();
    assert_eq!(created["credential"]["name"], "laptop");

    let listed = json(&setup, &ada, &["token", "list"]);
    let ids: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| text(&c["credential_id"]))
        .collect();
    assert!(ids.contains(&id.as_str()), "{ids:?}");
    let human = tessera(&setup, &ada, &["token", "list"], "");
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.starts_with("ID "), "{human}");
    // Created a moment ago for 30 days: 29 or 30 whole days from now.
    let in_30_days = human.contains("(in 29 d)") || human.contains("(in 30 d)");
    assert!(human.contains("laptop") && in_30_days, "{human}");

    // The token to verify comes on stdin, out of `ps`.
    let principal = json_with_stdin(&setup, &service, &["verify"], &token);
    assert_eq!(
        (
            principal["kind"].as_str(),
            principal["credential_id"].as_str()
        ),
        (Some("user"), Some(id.as_str()))
    );

    let invited = json(
        &setup,
        &ada,
        &["user", "invite", "bob@example.com", "--group", "Ops"],
    );
    let invite = text(&invited["invite_token"]).to_owned();
    let accepted = json(
        &setup,
        &invite,
        &["user", "accept", "--token-name", "first"],
    );
    assert!(text(&accepted["access_token"]).starts_with("tsr_usr_"));
    assert_eq!(accepted["user"]["email"], "bob@example.com");

    // Service secrets are listed to admins only; anyone else is told why
    // the list is empty.
    let stdout = |token: &str| {
        let out = tessera(&setup, token, &["secrets", "status"], "");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let for_bob = stdout(text(&accepted["access_token"]));
    assert!(for_bob.contains("only members of Admin"), "{for_bob}");
    let for_ada = stdout(&ada);
    assert!(
        for_ada.starts_with("SERVICE") && for_ada.contains("scheduler"),
        "{for_ada}"
    );

    let minted = json(
        &setup,
        &service,
        &["ticket", "mint", "--user-id", "u1", "--provider", "github"],
    );
    let ticket = text(&minted["ticket"]).to_owned();
    let consumed = json_with_stdin(&setup, &service, &["ticket", "consume"], &ticket);
    assert_eq!(consumed["user_id"], "u1");

    let revoked = json(&setup, &ada, &["token", "revoke", &id]);
    assert!(revoked["revoked_at"].is_string());
    let refused = tessera(&setup, &service, &["verify"], &token);
    assert_eq!(refused.status.code(), Some(3), "a revoked token is refused");

    let events = json(
        &setup,
        &ada,
        &[
            "audit",
            "list",
            "--action",
            "credential.revoke",
            "--since",
            "1h",
        ],
    );
    let events = events.as_array().expect("events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["resource"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_admin_consumes_the_banners_install_token() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db, ServerOptions::scheduler()).await;
    let install = boot_token(&server).await;
    let args = ["user", "first-admin", "ada@example.com", "--name", "Ada"];

    let without = tessera_at(&server, "", &args, "");
    assert_eq!(without.status.code(), Some(1), "no install token given");

    let created = tessera_at(&server, &install, &[&args[..], &["--json"]].concat(), "");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).expect("one JSON document");
    let admin_token = text(&created["admin_token"]).to_owned();
    assert!(admin_token.starts_with("tsr_usr_"));
    assert_eq!(created["admin"]["email"], "ada@example.com");
    assert_eq!(created["admin"]["groups"][0], "Admin");

    let principal = tessera_at(&server, &scheduler_secret(), &["verify"], &admin_token);
    assert!(principal.status.success(), "the admin's token verifies");

    // The token works once: then a human exists (FAILED_PRECONDITION).
    let again = tessera_at(&server, &install, &args, "");
    assert_eq!(again.status.code(), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_commands_work_end_to_end() {
    let (_db, setup) = setup().await;
    let service = scheduler_secret();
    let made = json(
        &setup,
        &service,
        &["workspace", "provision", "ws-cli", "--name", "CLI"],
    );
    let registration = text(&made["registration_token"]).to_owned();
    let registered = json(&setup, &registration, &["workspace", "register", "ws-cli"]);
    let auth = text(&registered["auth_token"]).to_owned();

    let started = json(&setup, &service, &["workspace", "rotate-inbound", "ws-cli"]);
    let next_id = text(&started["next_inbound_secret_id"]).to_owned();
    let learned = json(&setup, &auth, &["workspace", "register", "ws-cli"]);
    assert_eq!(learned["next_inbound_secret_id"], next_id.as_str());
    let next = text(&learned["next_platform_inbound_secret"]).to_owned();
    let args = [
        "workspace",
        "register",
        "ws-cli",
        "--held-inbound-secret-id",
        &next_id,
    ];
    json(&setup, &auth, &args);
    let read = json(&setup, &service, &["workspace", "inbound-secret", "ws-cli"]);
    assert_eq!(read["platform_inbound_secret"], next.as_str());

    let args = [
        "workspace",
        "reissue-registration",
        "ws-cli",
        "--revoke-auth-tokens",
    ];
    let reissued = json(&setup, &service, &args);
    assert_eq!(reissued["revoked"], 2);
    let deleted = json(&setup, &service, &["workspace", "delete", "ws-cli"]);
    assert_eq!(deleted["revoked"], 1, "the new registration token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_failures_apart() {
    let (_db, setup) = setup().await;
    let service = scheduler_secret();
    let code = |token: &str, args: &[&str]| tessera(&setup, token, args, "").status.code();
    assert_eq!(
        code(&service, &["workspace", "delete", "nope"]),
        Some(4),
        "not found"
    );
    assert_eq!(code("tsr_usr_junk", &["token", "list"]), Some(3), "refused");
    assert_eq!(
        code(&service, &["workspace", "delete", "bad id"]),
        Some(5),
        "rejected"
    );
    assert_eq!(
        code(&service, &["token", "list", "--token-file", "/nonexistent"]),
        Some(1),
        "local"
    );
    let unreachable = Command::new(binary())
        .args(["token", "list"])
        .env_clear()
        .env("TESSERA_ADDR", "127.0.0.1:1")
        .output()
        .expect("run");
    assert_eq!(unreachable.status.code(), Some(2), "unreachable");
    let local = |token: &str, args: &[&str]| tessera(&setup, token, args, "").status.code();
    assert_eq!(
        local("tsr_usr_a b", &["token", "list"]),
        Some(1),
        "a bearer with a space"
    );
    assert_eq!(
        local(&service, &["token", "list", "--no-such-flag"]),
        Some(1),
        "usage"
    );
    let with_password = Command::new(binary())
        .args([
            "token",
            "list",
            "--addr",
            "http://alice:S3cretPass@127.0.0.1:1",
        ])
        .env_clear()
        .output()
        .expect("run");
    assert_eq!(with_password.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&with_password.stderr);
    assert!(!stderr.contains("S3cretPass"), "{stderr}");
    let refused = tessera(&setup, "tsr_usr_junk", &["token", "list"], "");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("Unauthenticated") && !stderr.contains("tsr_usr_junk"),
        "{stderr}"
    );

    let completions = Command::new(binary())
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("tessera"));
}
