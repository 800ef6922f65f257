//! deploy/: the first-boot script writes secrets a real `tessera` accepts,
//! and `tessera health` answers with the right exit code.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use tessera_client::pb;
use tessera_tests::first_boot::{first_boot, first_boot_script, mode, read_env, value};
use tessera_tests::grpc::verify_as;
use tessera_tests::{ServerOptions, TestDatabase, TestServer, run_tessera};

const SCHEDULER: &str = "TESSERA_SERVICE_TOKEN_SCHEDULER";

fn assert_no_secret_printed(output: &Output, secrets: &[&str]) {
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in secrets {
        assert!(!printed.contains(secret), "first-boot.sh printed a secret");
    }
}

/// VerifyBearer of `bearer` as itself; a failure as `code: message`.
async fn verify(server: &TestServer, bearer: &str) -> Result<pb::Principal, String> {
    verify_as(server, bearer, bearer)
        .await
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

/// Every line of the .env in the server's environment, as compose's
/// `env_file:` or systemd's `EnvironmentFile=` would do.
async fn start_with_env_file(db: &TestDatabase, env_file: &Path) -> TestServer {
    let mut options = ServerOptions::new();
    for (key, value) in read_env(env_file) {
        options = options.env(&key, &value);
    }
    TestServer::start(db, options).await
}

#[tokio::test]
async fn first_boot_env_is_private_idempotent_and_accepted_by_tessera() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let env_file = dir.path().join(".env");

    // First boot: the file is created 0600 with a SCHEDULER secret (and the
    // extra names asked for), from `tessera gen-secret`.
    let output = first_boot(dir.path(), &["ci"], true);
    assert_eq!(mode(&env_file), 0o600, "mode from creation");
    let first = read_env(&env_file);
    let scheduler = value(&first, SCHEDULER);
    let ci = value(&first, "TESSERA_SERVICE_TOKEN_CI");
    for secret in [&scheduler, &ci] {
        assert!(
            secret.len() >= 32,
            "a secret of {} characters",
            secret.len()
        );
        assert!(!secret.contains(','), "one secret, not a rotation pair");
    }
    assert!(scheduler.starts_with("tsr_svc_"), "from tessera gen-secret");
    assert_ne!(scheduler, ci);
    assert_no_secret_printed(&output, &[&scheduler, &ci]);

    // Every later boot keeps what is there (here without the binary, so a
    // regeneration would show as a hex secret), and adds only new names.
    let before = std::fs::read_to_string(&env_file).expect("read .env");
    first_boot(dir.path(), &["ci"], false);
    assert_eq!(
        std::fs::read_to_string(&env_file).expect("read .env"),
        before,
        "a second run changes nothing"
    );
    first_boot(dir.path(), &["billing"], false);
    let second = read_env(&env_file);
    assert_eq!(value(&second, SCHEDULER), scheduler);
    assert_eq!(value(&second, "TESSERA_SERVICE_TOKEN_CI"), ci);
    let billing = value(&second, "TESSERA_SERVICE_TOKEN_BILLING");
    assert_eq!(billing.len(), 64, "32 random bytes in hex");
    assert!(billing.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(mode(&env_file), 0o600);

    // Tessera started with that .env accepts the generated secret.
    let db = TestDatabase::sqlite();
    let server = start_with_env_file(&db, &env_file).await;
    let principal = verify(&server, &scheduler).await.expect("VerifyBearer");
    assert_eq!(principal.email, "scheduler@system.local");
    let principal = verify(&server, &ci).await.expect("VerifyBearer");
    assert_eq!(principal.email, "ci@system.local");
    drop(server);

    // Rotation: `new,old`, the old value second, the others untouched.
    let output = first_boot(dir.path(), &["--rotate", "scheduler"], false);
    assert_eq!(mode(&env_file), 0o600, "mode kept by the rewrite");
    let rotated = read_env(&env_file);
    let pair = value(&rotated, SCHEDULER);
    let (new, old) = pair.split_once(',').expect("new,old");
    assert_eq!(old, scheduler, "the previous secret comes second");
    assert_ne!(new, scheduler);
    assert!(new.len() >= 32);
    assert_eq!(value(&rotated, "TESSERA_SERVICE_TOKEN_CI"), ci);
    assert_no_secret_printed(&output, &[new, old]);

    // During the roll both work; callers move to the first.
    let server = start_with_env_file(&db, &env_file).await;
    for secret in [new, old] {
        let principal = verify(&server, secret).await.expect("both secrets work");
        assert_eq!(principal.email, "scheduler@system.local");
    }
    drop(server);

    // Retiring drops the old one: it stops working at the next restart.
    first_boot(dir.path(), &["--retire", "SCHEDULER"], false);
    let retired = read_env(&env_file);
    assert_eq!(value(&retired, SCHEDULER), new);
    let server = start_with_env_file(&db, &env_file).await;
    verify(&server, new).await.expect("the new secret works");
    verify(&server, old)
        .await
        .expect_err("the retired secret is refused");
}

#[test]
fn first_boot_tightens_a_readable_file_and_refuses_bad_names() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let env_file = dir.path().join("conf").join("tessera.env");
    first_boot(dir.path(), &["-f", "conf/tessera.env"], false);
    assert_eq!(mode(&env_file), 0o600);
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    first_boot(dir.path(), &["--env-file", "conf/tessera.env"], false);
    assert_eq!(mode(&env_file), 0o600, "group and other bits removed");

    let output = Command::new("sh")
        .arg(first_boot_script())
        .args(["-f", "conf/tessera.env", "bad name"])
        .current_dir(dir.path())
        .output()
        .expect("run first-boot.sh");
    assert!(!output.status.success(), "a bad name is refused");
    assert_eq!(read_env(&env_file).len(), 1, "and nothing is written");
}

/// A symbolic link is refused (renaming into place would replace the link
/// with a file, and the mode read would be the link's), and so are an empty
/// group and one the system does not have (chgrp would take the number).
#[test]
fn first_boot_refuses_a_link_and_a_group_the_system_lacks() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let real = dir.path().join("real.env");
    first_boot(dir.path(), &["-f", "real.env"], false);
    let before = std::fs::read_to_string(&real).expect("read");
    std::os::unix::fs::symlink("real.env", dir.path().join("link.env")).expect("symlink");
    for args in [
        &["-f", "link.env", "--rotate", "scheduler"][..],
        &["-f", "new.env", "-g", ""],
        &["-f", "new.env", "--group=no-such-group-here"],
        &["-f", "new.env", "-g", "54321"],
    ] {
        let output = Command::new("sh")
            .arg(first_boot_script())
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run first-boot.sh");
        assert!(!output.status.success(), "{args:?} was accepted");
    }
    assert_eq!(std::fs::read_to_string(&real).expect("read"), before);
    assert_eq!(mode(&real), 0o600);
    assert!(!dir.path().join("new.env").exists(), "a file was left");
}

/// Nothing others may have put at a name the script could be guessed to
/// use (`<file>.tmp.<its pid>`, as it once did) is written through or moved
/// into place: here a symlink to /dev/null and a planted file.
#[test]
fn first_boot_ignores_what_is_planted_at_a_guessable_temp_name() {
    for plant in ["ln -s /dev/null \"$old\"", "echo planted >\"$old\""] {
        let dir = tempfile::tempdir().expect("temporary directory");
        // `exec` keeps the PID, so the script's `$$` is the wrapper's.
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("old=./.env.tmp.$$ && {plant} && exec sh \"$0\""))
            .arg(first_boot_script())
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("TESSERA_BIN", "false")
            .output()
            .expect("run first-boot.sh");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{plant}: {stderr}");
        let env_file = dir.path().join(".env");
        let meta = std::fs::symlink_metadata(&env_file).expect("stat .env");
        assert!(meta.file_type().is_file(), "{plant}: .env is {meta:?}");
        assert_eq!(mode(&env_file), 0o600);
        assert_eq!(value(&read_env(&env_file), SCHEDULER).len(), 64, "{plant}");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name != ".env")
            .collect();
        let planted = left.pop().expect("the planted name is still there");
        assert!(left.is_empty(), "{plant}: left behind {left:?}");
        let planted = dir.path().join(planted);
        match std::fs::read_link(&planted) {
            Ok(target) => assert_eq!(target, Path::new("/dev/null")),
            Err(_) => assert_eq!(
                std::fs::read_to_string(&planted).expect("read"),
                "planted\n"
            ),
        }
    }
}

/// `tessera health …` with a clean environment (plus `env`).
fn health(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<&str> = ["health"].iter().chain(args).copied().collect();
    run_tessera(&args, env)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn health_probe_exit_codes() {
    let db = TestDatabase::sqlite();
    let server = TestServer::start(&db, ServerOptions::new()).await;
    let addr = server.addr.to_string();

    for service in ["", "tessera.v1.CredentialService"] {
        let output = health(&["--addr", &addr, "--service", service], &[]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
        assert!(stdout.contains("SERVING"), "{stdout}");
    }

    // Without --addr it probes TESSERA_LISTEN, 0.0.0.0 on loopback.
    let listen = format!("0.0.0.0:{}", server.addr.port());
    let output = health(&[], &[("TESSERA_LISTEN", &listen)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("127.0.0.1"));

    // An unknown service: the Check call fails with NOT_FOUND.
    let output = health(&["--addr", &addr, "--service", "no.such.Service"], &[]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("NotFound"), "{stderr}");
    assert!(output.stdout.is_empty());

    // A closed port: cannot connect.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local addr")
    };
    let output = health(
        &["--addr", &closed.to_string(), "--timeout-ms", "2000"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("UNREACHABLE"));

    // Not an address: a usage error.
    let output = health(&["--addr", "no-port"], &[]);
    assert_eq!(output.status.code(), Some(1));
}
