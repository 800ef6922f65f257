//! deploy/systemd/tessera.service's reload path, without systemd: the unit's
//! own settings (a dynamic user that reads the service tokens file through a
//! supplementary group, `ExecReload`) applied to a real `tessera`, and the
//! unit's install steps and first-boot.sh's `--rotate`/`--retire` driving a
//! rotation with reloads instead of restarts.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_client::tonic::Code;
use tessera_tests::first_boot::{first_boot, mode, read_env, value};
use tessera_tests::grpc::verify_as;
use tessera_tests::{ServerOptions, TestServer, binary};

const SCHEDULER: &str = "TESSERA_SERVICE_TOKEN_SCHEDULER";
/// A stand-in for the id systemd would allocate (`DynamicUser=`).
const SERVICE_UID: u32 = 61_000;

/// A group this system has, standing in for the `tessera-secrets` group the
/// install steps create (first-boot.sh refuses a group the system lacks).
fn secrets_group() -> (String, u32) {
    ["nogroup", "users", "daemon"]
        .iter()
        .find_map(|name| {
            let output = Command::new("getent").args(["group", name]).output().ok()?;
            let line = String::from_utf8(output.stdout).ok()?;
            let gid = line.trim().split(':').nth(2)?.parse().ok()?;
            Some(((*name).to_owned(), gid))
        })
        .expect("a group to stand in for tessera-secrets")
}

/// deploy/systemd/tessera.service: its settings and its install steps.
struct Unit {
    text: String,
}

impl Unit {
    fn read() -> Unit {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/tessera.service");
        Unit {
            text: std::fs::read_to_string(path).expect("read the unit"),
        }
    }

    fn settings(&self, key: &str) -> Vec<&str> {
        let prefix = format!("{key}=");
        self.text
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .collect()
    }

    fn environment(&self, name: &str) -> String {
        let prefix = format!("{name}=");
        self.settings("Environment")
            .into_iter()
            .find_map(|value| value.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("the unit sets no {name}"))
            .to_owned()
    }

    /// The arguments of first-boot.sh in the unit's install steps.
    fn first_boot_args(&self) -> Vec<String> {
        let line = self
            .text
            .lines()
            .find_map(|line| line.split_once("first-boot.sh "))
            .expect("the install steps run first-boot.sh")
            .1;
        line.split_whitespace()
            .take_while(|word| !word.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }
}

/// The unit's tokens file, moved from /etc/tessera into `root`.
fn mapped(root: &Path, unit_path: &str) -> PathBuf {
    root.join(unit_path.trim_start_matches('/'))
}

/// Runs the unit's `ExecReload` for the server's pid and waits for the
/// reload to end.
async fn systemctl_reload(unit: &Unit, server: &mut TestServer) {
    let exec_reload = |server: &mut TestServer| {
        let pid = server.pid().to_string();
        let command = unit.settings("ExecReload")[0].replace("$MAINPID", &pid);
        let mut words = command.split_whitespace();
        let status = Command::new(words.next().expect("a command"))
            .args(words)
            .status()
            .expect("run ExecReload");
        assert!(status.success(), "{command}: {status}");
    };
    server.log_after("configuration reload", exec_reload).await;
}

async fn accepted(server: &TestServer, secret: &str) -> bool {
    match verify_as(server, secret, secret).await {
        Ok(principal) => principal.email == "scheduler@system.local",
        Err(status) if status.code() == Code::Unauthenticated => false,
        Err(status) => panic!("{status:?}"),
    }
}

fn chown(path: &Path, uid: u32, gid: u32, mode: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test]
async fn a_rotation_under_the_unit_needs_reloads_not_restarts() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: running tessera as another user (as systemd would) needs root");
        return;
    }
    let unit = Unit::read();
    let tokens_unit_path = unit.environment("TESSERA_SERVICE_TOKENS_FILE");
    let (group, secrets_gid) = secrets_group();
    let root = tempfile::tempdir().expect("dir");
    chown(root.path(), 0, 0, 0o755);

    // The install steps: /etc/tessera 0750 root:tessera-secrets, the tokens
    // file written by first-boot.sh for that group.
    let tokens = mapped(root.path(), &tokens_unit_path);
    let etc = tokens.parent().expect("a directory");
    std::fs::create_dir_all(etc).expect("mkdir");
    chown(etc, 0, secrets_gid, 0o750);
    let mut args = unit.first_boot_args();
    assert_eq!(args[..2], ["-f", tokens_unit_path.as_str()], "{args:?}");
    assert_eq!(args[2], "-g", "{args:?}");
    args[1] = tokens.display().to_string();
    args[3] = group;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    first_boot(root.path(), &args, true);
    let meta = std::fs::metadata(&tokens).expect("stat");
    assert_eq!(
        (mode(&tokens), meta.uid(), meta.gid()),
        (0o640, 0, secrets_gid)
    );
    let old = value(&read_env(&tokens), SCHEDULER);

    // The service: its own user, the group, a state directory only it may
    // enter, and a copy of the binary it can reach (not under /root).
    let state = root.path().join("var/lib/tessera");
    std::fs::create_dir_all(&state).expect("mkdir");
    chown(&state, SERVICE_UID, SERVICE_UID, 0o700);
    let program = root.path().join("tessera");
    std::fs::copy(binary(), &program).expect("copy the binary");
    let options = ServerOptions::new()
        .program(&program)
        .run_as(SERVICE_UID, SERVICE_UID, &[secrets_gid])
        .current_dir(&state)
        .env("TESSERA_SERVICE_TOKENS_FILE", &tokens.display().to_string())
        .database_url(&format!("sqlite:{}/tessera.db", state.display()));
    let mut server = TestServer::start_with(options).await;
    assert!(accepted(&server, &old).await);
    assert!(
        !server.stderr().contains("\"level\":\"WARN\""),
        "a warning:\n{}",
        server.stderr()
    );

    // --rotate keeps the file readable by the group; a reload takes it.
    first_boot(root.path(), &["-f", args[1], "--rotate", "scheduler"], true);
    assert_eq!(mode(&tokens), 0o640, "--rotate kept the mode");
    let pair = value(&read_env(&tokens), SCHEDULER);
    let new = pair.split(',').next().expect("new first").to_owned();
    assert_eq!(pair, format!("{new},{old}"));
    systemctl_reload(&unit, &mut server).await;
    assert!(accepted(&server, &new).await, "{}", server.stderr());
    assert!(accepted(&server, &old).await);

    // --retire, reload: the old secret is refused from then on.
    first_boot(root.path(), &["-f", args[1], "--retire", "scheduler"], true);
    systemctl_reload(&unit, &mut server).await;
    assert!(!accepted(&server, &old).await);
    assert!(accepted(&server, &new).await);
    let logs = server.stderr();
    assert!(!logs.contains("reload failed"), "{logs}");
    server.terminate();
}
