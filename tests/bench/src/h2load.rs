//! h2load as the primary generator of unary calls: it spends far less CPU
//! per call than a gRPC client stack, so the server, not the generator, is
//! what runs out of CPU. Each run reads the CPU of the server and of h2load
//! itself from /proc, and Tessera's own per-method counters.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use tessera_client::pb::VerifyBearerRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Level;
use crate::procs::{Proc, cpu_seconds, machine_busy_seconds, state};
use crate::saturation::{self, Saturated, Shares};

/// The longest one h2load run may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// One h2load run.
#[derive(Clone, Debug)]
pub struct H2Result {
    pub rate: f64,
    pub succeeded: u64,
    pub failed: u64,
    /// Responses with a 2xx HTTP status.
    pub status_2xx: u64,
    /// VerifyBearer calls the server counted as `OK` / otherwise during the run.
    pub server_ok: Option<u64>,
    pub server_not_ok: Option<u64>,
    /// Server CPU µs per request.
    pub server_cpu_us: Option<f64>,
    /// Cores used over the run (the generator: h2load).
    pub shares: Shares,
    pub saturated: Saturated,
}

/// What one h2load run sends, and to whom.
pub struct Request<'a> {
    /// Full URL of the call.
    pub url: String,
    pub headers: Vec<String>,
    /// The request body file (h2load then sends POST).
    pub body: &'a Path,
    /// HTTP/1.1 (keep-alive, one request in flight per connection) instead
    /// of h2c.
    pub h1: bool,
    /// The server's pid, for its CPU time.
    pub server_pid: u32,
    /// Tessera, whose metrics count VerifyBearer outcomes.
    pub counted: Option<&'a Proc>,
}

/// A gRPC message frame (uncompressed) holding VerifyBearer{token}.
pub fn grpc_frame(token: &str) -> Vec<u8> {
    let body = VerifyBearerRequest {
        token: token.to_owned(),
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// The headers of a VerifyBearer call by `bearer`.
pub fn grpc_headers(bearer: &str) -> Vec<String> {
    vec![
        "content-type: application/grpc".to_owned(),
        "te: trailers".to_owned(),
        format!("authorization: Bearer {bearer}"),
    ]
}

/// Sums `tessera_grpc_requests_total{method="VerifyBearer"}` by OK / not OK.
async fn scrape(proc: &Proc) -> Option<(u64, u64)> {
    let addr = proc.metrics_addr()?;
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    let (mut ok, mut not_ok) = (0, 0);
    for line in text.lines() {
        if !line.starts_with("tessera_grpc_requests_total{")
            || !line.contains("method=\"VerifyBearer\"")
        {
            continue;
        }
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        if line.contains("code=\"Ok\"") || line.contains("code=\"OK\"") {
            ok += value as u64;
        } else {
            not_ok += value as u64;
        }
    }
    Some((ok, not_ok))
}

/// Runs h2load once: `requests` calls at `level` (h2c: `-c conns -m
/// streams`; HTTP/1.1: `conns × streams` connections, one call in flight
/// on each, since HTTP/1.1 does not multiplex).
pub async fn run(
    bin: &Path,
    request: &Request<'_>,
    level: Level,
    requests: u64,
) -> Result<H2Result, String> {
    let in_flight = (level.0 * level.1) as u64;
    let mut command = Command::new(bin);
    command.arg("-n").arg(requests.max(in_flight).to_string());
    if request.h1 {
        command
            .args(["--h1", "-m", "1", "-c"])
            .arg(in_flight.to_string());
    } else {
        command
            .arg("-c")
            .arg(level.0.to_string())
            .arg("-m")
            .arg(level.1.to_string());
    }
    command.args(["-t", "1"]);
    for header in &request.headers {
        command.arg("-H").arg(header);
    }
    command.arg("-d").arg(request.body).arg(&request.url);
    let before = match request.counted {
        Some(proc) => scrape(proc).await,
        None => None,
    };
    let out = Output::capture(command, request.server_pid).await?;
    let after = match request.counted {
        Some(proc) => scrape(proc).await,
        None => None,
    };
    let text = &out.stdout;
    // "finished in 1.23s, 8123.45 req/s, 1.2MB/s"
    let rate = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.trim_end_matches(" req/s").parse().ok())
        .ok_or_else(|| format!("h2load output not understood:\n{text}"))?;
    // "requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, ..."
    // "status codes: 100 2xx, 0 3xx, 0 4xx, 0 5xx"
    let count = |prefix: &str, word: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| {
                l.trim_start_matches(prefix)
                    .split(", ")
                    .find(|part| part.ends_with(word))
                    .and_then(|part| part.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    };
    let succeeded = count("requests:", "succeeded");
    let (server_ok, server_not_ok) = match (before, after) {
        (Some(b), Some(a)) => (Some(a.0 - b.0), Some(a.1 - b.1)),
        _ => (None, None),
    };
    let server_cpu = out.server_cpu;
    let shares = Shares::from_seconds(
        server_cpu,
        out.gen_cpu,
        out.machine_cpu,
        out.wall.as_secs_f64(),
    );
    Ok(H2Result {
        rate,
        succeeded,
        failed: count("requests:", "failed"),
        status_2xx: count("status codes:", "2xx"),
        server_ok,
        server_not_ok,
        server_cpu_us: server_cpu
            .filter(|_| succeeded > 0)
            .map(|s| s * 1e6 / succeeded as f64),
        shares,
        saturated: shares.decide(saturation::machine_cores(), 1.0),
    })
}

/// A finished h2load process: its output, its own CPU time (read while it
/// is a zombie, before it is reaped), the server's CPU time over the same
/// span, and the wall time it ran.
struct Output {
    stdout: String,
    gen_cpu: Option<f64>,
    server_cpu: Option<f64>,
    machine_cpu: Option<f64>,
    wall: Duration,
}

impl Output {
    async fn capture(mut command: Command, server_pid: u32) -> Result<Output, String> {
        let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let stdout = file.reopen().map_err(|e| e.to_string())?;
        command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null());
        let server_before = cpu_seconds(server_pid);
        let machine_before = machine_busy_seconds();
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("h2load: {e}"))?;
        let pid = child.id();
        let gen_cpu = loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            match state(pid) {
                Some('Z') | None => break cpu_seconds(pid),
                _ if started.elapsed() > RUN_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("h2load ran longer than {RUN_TIMEOUT:?}"));
                }
                _ => {}
            }
        };
        let wall = started.elapsed();
        let server_cpu = cpu_seconds(server_pid)
            .zip(server_before)
            .map(|(a, b)| a - b);
        let machine_cpu = machine_busy_seconds()
            .zip(machine_before)
            .map(|(a, b)| a - b);
        let status = child.wait().map_err(|e| e.to_string())?;
        let stdout = std::fs::read_to_string(file.path()).map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("h2load failed ({status}):\n{stdout}"));
        }
        Ok(Output {
            stdout,
            gen_cpu,
            server_cpu,
            machine_cpu,
            wall,
        })
    }
}

/// `h2load` on the PATH.
pub fn find() -> Option<PathBuf> {
    crate::which("h2load")
}
