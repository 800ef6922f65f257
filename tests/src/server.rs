//! A real `tessera serve` process on `127.0.0.1:0`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tessera_client::tonic::transport::Channel;
use tessera_client::{Client, ClientTls, Secret};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::TestDatabase;

/// How long a server may take to listen and report `SERVING`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment and arguments for a test server.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    env: Vec<(String, String)>,
    tls: Option<ClientTls>,
}

impl ServerOptions {
    /// Test defaults: JSON logs, fast health checks, reaper and heartbeat.
    pub fn new() -> Self {
        Self::default()
            .env("TESSERA_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("TESSERA_DB_CHECK_INTERVAL_MS", "200")
            .env("TESSERA_REAPER_INTERVAL_MS", "200")
            .env("TESSERA_HEARTBEAT_INTERVAL_MS", "200")
            .env("TESSERA_DRAIN_TIMEOUT_MS", "5000")
            .env("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "100000")
            .env("TESSERA_AUTH_FAILURES_PER_MINUTE", "100000")
    }

    /// Sets an environment variable (later values win).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// How the harness's own clients reach a server configured for TLS
    /// (through `env`): they then use `https://`.
    pub fn client_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
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
}

/// A running `tessera` process. Killed when dropped.
pub struct TestServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    tls: Option<ClientTls>,
}

impl TestServer {
    /// Starts `tessera serve` on `database` and waits until it is `SERVING`.
    pub async fn start(database: &TestDatabase, options: ServerOptions) -> TestServer {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database.url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start tessera");
        let stdout = capture(child.stdout.take().expect("stdout"), None);
        let (addr_tx, addr_rx) = mpsc::channel();
        let stderr = capture(child.stderr.take().expect("stderr"), Some(addr_tx));
        let addr = match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let logs = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                panic!("tessera did not report its address; stderr:\n{logs}");
            }
        };
        let server = TestServer {
            child,
            addr,
            stdout,
            stderr,
            tls: options.tls.clone(),
        };
        server
            .wait_for_health(ServingStatus::Serving, START_TIMEOUT)
            .await;
        server
    }

    /// `http://<addr>`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A client sending `bearer` (or nothing) on every call.
    pub async fn client(&self, bearer: Option<&str>) -> Client {
        let mut builder = Client::builder(self.endpoint());
        if let Some(bearer) = bearer {
            builder = builder.bearer(Secret::new(bearer));
        }
        if let Some(tls) = &self.tls {
            builder = builder.tls(tls.clone());
        }
        builder.connect().await.expect("connect to tessera")
    }

    /// A health client on a fresh connection.
    pub async fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.client(None).await.channel())
    }

    /// The health status of `service` (`""` for the server).
    pub async fn health_status(&self, service: &str) -> Option<ServingStatus> {
        let mut health = self.health().await;
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        let response = health.check(request).await.ok()?;
        ServingStatus::try_from(response.into_inner().status).ok()
    }

    /// Waits until the server-wide health is `status`; panics after `timeout`.
    pub async fn wait_for_health(&self, status: ServingStatus, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.health_status("").await == Some(status) {
                return;
            }
            if Instant::now() > deadline {
                panic!("health never became {status:?}; stderr:\n{}", self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the process wrote to standard output so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Everything the process wrote to standard error (its logs) so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// Sends SIGKILL.
    pub fn kill(&self) {
        self.signal(Signal::SIGKILL);
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("tessera did not exit; stderr:\n{}", self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = kill(pid, signal);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `tessera` binary with `args` and extra environment, to completion.
pub fn run_tessera(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run tessera")
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

/// Copies a stream into a buffer on a thread; with `addr`, also reports the
/// address from the `listening` log line.
fn capture(
    stream: impl Read + Send + 'static,
    addr: Option<mpsc::Sender<SocketAddr>>,
) -> Arc<Mutex<String>> {
    let buffer = Arc::new(Mutex::new(String::new()));
    let sink = buffer.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let (Some(tx), Some(found)) = (&addr, listening_addr(&line)) {
                let _ = tx.send(found);
            }
            if let Ok(mut sink) = sink.lock() {
                sink.push_str(&line);
                sink.push('\n');
            }
        }
    });
    buffer
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}
