//! A spawned `tessera` process: how it is started ([`ServerOptions`]), its
//! captured output, its address once it logs one, signals and exit.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tessera_client::ClientTls;

/// Environment, arguments and working directory of a test server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    args: Vec<String>,
    env: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
    /// Programs that set something up and then exec `tessera` (same pid).
    wrappers: Vec<String>,
    program: Option<PathBuf>,
    pub(crate) tls: Option<ClientTls>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerOptions {
    /// Test defaults: `serve --listen 127.0.0.1:0`, JSON logs at `info`, fast
    /// health checks, reaper and heartbeat, a 5 s drain, and rate limits
    /// high enough that only the tests of throttling meet them.
    pub fn new() -> Self {
        Self {
            args: ["serve", "--listen", "127.0.0.1:0"]
                .map(str::to_owned)
                .to_vec(),
            env: Vec::new(),
            current_dir: None,
            wrappers: Vec::new(),
            program: None,
            tls: None,
        }
        .log_format("json")
        .env("RUST_LOG", "info")
        .env("TESSERA_DB_CHECK_INTERVAL_MS", "200")
        .env("TESSERA_REAPER_INTERVAL_MS", "200")
        .env("TESSERA_HEARTBEAT_INTERVAL_MS", "200")
        .env("TESSERA_DRAIN_TIMEOUT_MS", "5000")
        .env("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "100000")
        .env("TESSERA_AUTH_FAILURES_PER_MINUTE", "100000")
    }

    /// The defaults with the `SCHEDULER` service configured with
    /// [`scheduler_secret`](crate::scheduler_secret).
    pub fn scheduler() -> Self {
        Self::new().service(crate::SCHEDULER, &crate::scheduler_secret())
    }

    /// Replaces the command-line arguments; `&[]` runs `tessera` bare, which
    /// must serve as `tessera serve` does.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|arg| (*arg).to_owned()).collect();
        self
    }

    /// Runs the process in `dir` (where a default SQLite file would go).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.current_dir = Some(dir.to_owned());
        self
    }

    /// `TESSERA_LOG_FORMAT`: `json` (the default here) or `pretty`. The
    /// harness finds the listening address in either.
    pub fn log_format(self, format: &str) -> Self {
        self.env("TESSERA_LOG_FORMAT", format)
    }

    /// `DATABASE_URL`; without it the server uses its default SQLite file.
    pub fn database_url(self, url: &str) -> Self {
        self.env("DATABASE_URL", url)
    }

    /// Sets an environment variable (later values win).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets each `(key, value)` (later values win).
    pub fn envs(self, pairs: &[(&str, &str)]) -> Self {
        pairs
            .iter()
            .fold(self, |options, (key, value)| options.env(key, value))
    }

    /// Configures `TESSERA_SERVICE_TOKEN_<NAME>=secret`.
    pub fn service(self, name: &str, secret: &str) -> Self {
        self.env(&format!("TESSERA_SERVICE_TOKEN_{name}"), secret)
    }

    /// Runs the process with at most `limit` open files (soft and hard
    /// limit, through util-linux `prlimit`, which must be installed).
    pub fn open_file_limit(self, limit: u32) -> Self {
        self.wrapped(&["prlimit", &format!("--nofile={limit}:{limit}"), "--"])
    }

    /// Runs the process as user `uid`, group `gid`, with the supplementary
    /// `groups` and no capabilities, through util-linux `setpriv` — as
    /// systemd runs a unit with `DynamicUser=` and `SupplementaryGroups=`.
    /// The test must run as root, and the binary must be reachable by that
    /// user (see [`program`](Self::program)).
    pub fn run_as(self, uid: u32, gid: u32, groups: &[u32]) -> Self {
        let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
        self.wrapped(&[
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            &format!("--groups={}", groups.join(",")),
            "--inh-caps=-all",
            "--",
        ])
    }

    /// Runs this `tessera` executable instead of the one cargo built.
    pub fn program(mut self, path: &Path) -> Self {
        self.program = Some(path.to_owned());
        self
    }

    fn wrapped(mut self, wrapper: &[&str]) -> Self {
        self.wrappers
            .extend(wrapper.iter().map(|arg| (*arg).to_owned()));
        self
    }

    /// How the harness's own clients reach a server configured for TLS
    /// (through `env`): they then use `https://`.
    pub fn client_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A running `tessera` process with its standard output and error captured.
/// Killed when dropped.
pub struct ServerProcess {
    child: Child,
    exit: Option<ExitStatus>,
    stdout: Capture,
    stderr: Capture,
    addr: Arc<OnceLock<SocketAddr>>,
    pub(crate) tls: Option<ClientTls>,
}

impl ServerProcess {
    /// Starts `tessera` as `options` say, with a clean environment (only
    /// `PATH` is inherited) and no standard input. Returns at once.
    pub fn spawn(options: &ServerOptions) -> ServerProcess {
        let program = options.program.clone().unwrap_or_else(binary);
        // Each wrapper execs the next program, the last one tessera: same pid.
        let mut command = match options.wrappers.split_first() {
            Some((first, rest)) => {
                let mut wrapped = Command::new(first);
                wrapped.args(rest).arg(program);
                wrapped
            }
            None => Command::new(program),
        };
        command
            .args(&options.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &options.current_dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().expect("start tessera");
        let addr = Arc::new(OnceLock::new());
        let stdout = Capture::start(child.stdout.take().expect("stdout"), None);
        let stderr = Capture::start(child.stderr.take().expect("stderr"), Some(addr.clone()));
        ServerProcess {
            child,
            exit: None,
            stdout,
            stderr,
            addr,
            tls: options.tls.clone(),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where it listens, once its `listening` log line has been read.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr.get().copied()
    }

    /// Waits for the `listening` log line; panics when the process exits
    /// first or `timeout` passes.
    pub async fn wait_listening(&mut self, timeout: Duration) -> SocketAddr {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(addr) = self.addr() {
                return addr;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "tessera exited ({status:?}) before listening; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `listening` log line within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits for the process to exit and for its last output to be read;
    /// panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                // The pipes close with the process: the readers end soon.
                while !(self.stdout.is_done() && self.stderr.is_done()) {
                    assert!(Instant::now() < deadline, "tessera's output never closed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tessera did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit, as after SIGTERM or SIGINT, and
    /// asserts it exited with status 0.
    pub async fn wait_exit_zero(&mut self, timeout: Duration) {
        let status = self.wait_exit(timeout).await;
        assert_eq!(
            status.code(),
            Some(0),
            "tessera must exit 0 after a signal, got {status:?}; stderr:\n{}",
            self.stderr()
        );
    }

    /// Everything the process wrote to standard output so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Everything the process wrote to standard error (its logs) so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Sends SIGTERM.
    pub fn terminate(&mut self) {
        self.signal(Signal::SIGTERM);
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&mut self) {
        self.signal(Signal::SIGINT);
    }

    /// Sends SIGHUP, as a closed terminal or `systemctl reload` does.
    pub fn hangup(&mut self) {
        self.signal(Signal::SIGHUP);
    }

    /// Sends SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
    }

    /// Sends `signal`, unless the process has exited and been reaped: its
    /// pid may belong to another process by then.
    fn signal(&mut self, signal: Signal) {
        if self.exited().is_some() {
            return;
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, signal).expect("signal tessera");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One output stream of the process, copied line by line into a buffer by a
/// thread.
struct Capture {
    text: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Capture {
    /// Starts the copy; with `addr`, also records the address of the first
    /// `listening` log line.
    fn start(stream: impl Read + Send + 'static, addr: Option<Arc<OnceLock<SocketAddr>>>) -> Self {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = text.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let (Some(addr), Some(found)) = (&addr, listening_addr(&line)) {
                    let _ = addr.set(found);
                }
                if let Ok(mut sink) = sink.lock() {
                    sink.push_str(&line);
                    sink.push('\n');
                }
            }
        });
        Capture { text, reader }
    }

    fn text(&self) -> String {
        self.text.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn is_done(&self) -> bool {
        self.reader.is_finished()
    }
}

/// The address of the gRPC `listening` log line, JSON or human-readable
/// (not the `metrics listening` one).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
        let fields = value.get("fields")?;
        if fields.get("message")?.as_str()? != "listening" {
            return None;
        }
        return fields.get("addr")?.as_str()?.parse().ok();
    }
    let line = strip_ansi(line);
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|word| *word == "listening")?;
    if at > 0 && words[at - 1] == "metrics" {
        return None;
    }
    words
        .iter()
        .find_map(|word| word.strip_prefix("addr="))?
        .parse()
        .ok()
}

/// `line` without ANSI colour sequences (`ESC [ … letter`).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the `tessera` binary with `args` and extra environment, to completion.
pub fn run_tessera(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    command.output().expect("run tessera")
}

/// Runs `tessera migrate` on `database_url`; panics, with its stderr, when
/// it fails.
#[track_caller]
pub fn migrate(database_url: &str) {
    let out = run_tessera(&["migrate"], &[("DATABASE_URL", database_url)]);
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `tessera` binary built next to this test executable.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TESSERA_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/tessera
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("tessera"))
        .expect("target directory");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p tessera-server` or run `cargo test --workspace`",
        path.display()
    );
    path
}

/// [`run_tessera`] on a blocking thread, for async tests; panics when the
/// command takes longer than 30 s.
pub async fn run_tessera_async(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let run = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_tessera(&args, &env)
    });
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the tessera command finishes within 30 s")
        .expect("run tessera")
}
