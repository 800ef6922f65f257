//! Server processes under test (`tessera`, `noop-server`) and what /proc
//! says about them.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tessera_client::tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long a server may take to listen and report `SERVING`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process; killed when dropped.
pub struct Proc {
    child: Child,
    /// When it was spawned.
    pub spawned: Instant,
    /// Its gRPC address.
    pub addr: SocketAddr,
    metrics: Arc<Mutex<Option<SocketAddr>>>,
    install_token: Arc<Mutex<Option<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `tessera serve` on `database_url` and returns once it listens
    /// (not yet once it is `SERVING`: see [`Proc::wait_serving`]).
    pub fn tessera(bin: &Path, database_url: &str, env: &[(&str, String)]) -> Result<Proc, String> {
        let mut command = Command::new(bin);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("TESSERA_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("TESSERA_METRICS_LISTEN", "127.0.0.1:0")
            .env("TESSERA_ANONYMOUS_RATE_PER_MINUTE", "100000000")
            .env("TESSERA_AUTH_FAILURES_PER_MINUTE", "100000000");
        for (key, value) in env {
            command.env(key, value);
        }
        Self::spawn(command, bin)
    }

    /// Starts the baseline `noop-server`, answering VerifyBearer with the
    /// principals of `principals` (see its `--principals`).
    pub fn noop(bin: &Path, principals: &Path) -> Result<Proc, String> {
        let mut command = Command::new(bin);
        command
            .args(["--listen", "127.0.0.1:0", "--principals"])
            .arg(principals);
        Self::spawn(command, bin)
    }

    fn spawn(mut command: Command, bin: &Path) -> Result<Proc, String> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let (addr_tx, addr_rx) = mpsc::channel();
        let install_token = Arc::new(Mutex::new(None));
        let metrics = Arc::new(Mutex::new(None));
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let out = child.stdout.take().ok_or("no stdout")?;
            let install_token = install_token.clone();
            let addr_tx = addr_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(token) = line.split("INSTALL TOKEN: ").nth(1) {
                        *lock(&install_token) = Some(token.trim().to_owned());
                    } else if let Some(addr) = line.strip_prefix("listening ")
                        && let Ok(addr) = addr.trim().parse()
                    {
                        let _ = addr_tx.send(addr);
                    }
                }
            });
        }
        {
            let err = child.stderr.take().ok_or("no stderr")?;
            let (metrics, stderr) = (metrics.clone(), stderr.clone());
            std::thread::spawn(move || read_logs(err, &addr_tx, &metrics, &stderr));
        }
        match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => Ok(Proc {
                child,
                spawned,
                addr,
                metrics,
                install_token,
                stderr,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "{} did not report its address; stderr:\n{}",
                    bin.display(),
                    lock(&stderr)
                ))
            }
        }
    }

    /// `http://<addr>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until gRPC health reports `SERVING` for `""`; returns the time
    /// from spawning the process.
    pub async fn wait_serving(&self) -> Result<Duration, String> {
        let deadline = self.spawned + START_TIMEOUT;
        let endpoint = Endpoint::from_shared(self.endpoint()).map_err(|e| e.to_string())?;
        loop {
            if let Ok(channel) = endpoint.connect().await {
                let mut health = HealthClient::new(channel);
                loop {
                    let request = HealthCheckRequest {
                        service: String::new(),
                    };
                    match health.check(request).await {
                        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
                            return Ok(self.spawned.elapsed());
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                    if Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("never SERVING; stderr:\n{}", self.stderr()));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The install token printed on first boot, waiting up to 10 s for it.
    pub async fn install_token(&self) -> Result<String, String> {
        for _ in 0..1000 {
            if let Some(token) = lock(&self.install_token).clone() {
                return Ok(token);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err("no INSTALL TOKEN line on standard output".to_owned())
    }

    /// The Prometheus endpoint, once its "metrics listening" line is read.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        *lock(&self.metrics)
    }

    /// Everything the process logged so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads JSON log lines: the gRPC and metrics addresses, and keeps the text
/// (bounded) for error messages.
fn read_logs(
    err: impl Read,
    addr_tx: &mpsc::Sender<SocketAddr>,
    metrics: &Mutex<Option<SocketAddr>>,
    stderr: &Mutex<String>,
) {
    for line in BufReader::new(err).lines().map_while(Result::ok) {
        {
            let mut text = lock(stderr);
            if text.len() < 64 * 1024 {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let fields = &value["fields"];
        let addr = fields["addr"].as_str().and_then(|a| a.parse().ok());
        match (fields["message"].as_str(), addr) {
            (Some("listening"), Some(addr)) => {
                let _ = addr_tx.send(addr);
            }
            (Some("metrics listening"), Some(addr)) => *lock(metrics) = Some(addr),
            _ => {}
        }
    }
}

/// Clock ticks per second of /proc/<pid>/stat.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of `pid` in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3;
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// The state letter of `pid` (`R`, `S`, `Z`, …), `None` once it is gone.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// CPU seconds the whole machine has spent busy (all cores: user, nice,
/// system, irq, softirq, steal), from the first line of /proc/stat.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<f64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let busy: f64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| fields.get(*i))
        .sum();
    Some(busy / clock_ticks())
}
