//! Figures, the h2load cross-check, and the Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use prost::Message;
use tessera_client::pb::{ConsumeTicketRequest, MintTicketRequest, VerifyBearerRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::load::Outcome;
use crate::procs::Proc;
use crate::{Level, Scenario, System, spread};

/// One measured cell.
#[derive(Clone, Debug)]
pub struct Sample {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub consume_p50: f64,
    pub consume_p99: f64,
    /// Server CPU µs per operation.
    pub cpu_us: Option<f64>,
    pub errors: u64,
}

impl From<&Outcome> for Sample {
    fn from(o: &Outcome) -> Self {
        Sample {
            rate: o.rate(),
            p50: o.latency.value_at_quantile(0.50) as f64,
            p99: o.latency.value_at_quantile(0.99) as f64,
            consume_p50: o.consume.value_at_quantile(0.50) as f64,
            consume_p99: o.consume.value_at_quantile(0.99) as f64,
            cpu_us: o
                .server_cpu
                .filter(|_| o.ok > 0)
                .map(|s| s * 1e6 / o.ok as f64),
            errors: o.errors,
        }
    }
}

/// One h2load run.
#[derive(Clone, Debug)]
pub struct H2Result {
    pub rate: f64,
    pub succeeded: u64,
    pub failed: u64,
    /// VerifyBearer calls the server counted as `OK` / otherwise during the run.
    pub server_ok: Option<u64>,
    pub server_not_ok: Option<u64>,
}

/// Everything the report shows.
#[derive(Default)]
pub struct Figures {
    pub quick: bool,
    pub profile: String,
    pub reps: usize,
    pub window_ms: u64,
    pub cells: BTreeMap<(Level, System, Scenario), Vec<Sample>>,
    pub h2load: BTreeMap<(Level, System), Vec<H2Result>>,
    pub live: BTreeMap<(u64, Level), Vec<Sample>>,
    pub startup: BTreeMap<&'static str, Vec<f64>>,
    pub rss_kib: BTreeMap<System, Vec<u64>>,
    pub pg_synchronous_commit: Option<String>,
    pub redis_persistence: Option<String>,
    pub response_bytes: Vec<(String, usize, usize)>,
    pub notes: Vec<String>,
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

/// Runs h2load against `proc` with the pre-encoded VerifyBearer frame, and
/// reads the server's own counters before and after (h2load counts a gRPC
/// error as HTTP 200).
pub async fn h2load(
    bin: &Path,
    proc: &Proc,
    frame: &Path,
    secret: &str,
    level: Level,
    requests: u64,
) -> Result<H2Result, String> {
    let before = scrape(proc).await;
    let output = tokio::process::Command::new(bin)
        .arg("-n")
        .arg(requests.max((level.0 * level.1) as u64).to_string())
        .arg("-c")
        .arg(level.0.to_string())
        .arg("-m")
        .arg(level.1.to_string())
        .arg("-H")
        .arg("content-type: application/grpc")
        .arg("-H")
        .arg("te: trailers")
        .arg("-H")
        .arg(format!("authorization: Bearer {secret}"))
        .arg("-d")
        .arg(frame)
        .arg(format!(
            "{}/tessera.v1.CredentialService/VerifyBearer",
            proc.endpoint()
        ))
        .output()
        .await
        .map_err(|e| format!("h2load: {e}"))?;
    let after = scrape(proc).await;
    let text = String::from_utf8_lossy(&output.stdout);
    // "finished in 1.23s, 8123.45 req/s, 1.2MB/s"
    let rate = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.trim_end_matches(" req/s").parse().ok())
        .ok_or_else(|| format!("h2load output not understood:\n{text}"))?;
    // "requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, ..."
    let count = |word: &str| {
        text.lines()
            .find(|l| l.starts_with("requests:"))
            .and_then(|l| {
                l.split(", ")
                    .find(|part| part.ends_with(word))
                    .and_then(|part| part.split_whitespace().rev().nth(1))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    };
    let (server_ok, server_not_ok) = match (before, after) {
        (Some(b), Some(a)) => (Some(a.0 - b.0), Some(a.1 - b.1)),
        _ => (None, None),
    };
    Ok(H2Result {
        rate,
        succeeded: count("succeeded"),
        failed: count("failed"),
        server_ok,
        server_not_ok,
    })
}

/// Encoded response sizes of the no-op and of Tessera, for the same calls.
pub async fn response_sizes(
    noop: String,
    tessera: String,
    secret: &str,
) -> Result<Vec<(String, usize, usize)>, String> {
    let mut sizes: Vec<(String, usize, usize)> = Vec::new();
    for (i, endpoint) in [noop, tessera].into_iter().enumerate() {
        let mut client = crate::grpc_client(&endpoint, secret).await?;
        let verify = client
            .verify_bearer(VerifyBearerRequest {
                token: secret.to_owned(),
            })
            .await
            .map_err(|s| s.to_string())?
            .into_inner()
            .encoded_len();
        let minted = client
            .mint_ticket(MintTicketRequest {
                user_id: "user-0000".to_owned(),
                provider: "github".to_owned(),
                purpose: "bench".to_owned(),
                ttl_seconds: 0,
            })
            .await
            .map_err(|s| s.to_string())?
            .into_inner();
        let mint = minted.encoded_len();
        let consume = client
            .consume_ticket(ConsumeTicketRequest {
                ticket: minted.ticket,
                purpose: "bench".to_owned(),
            })
            .await
            .map_err(|s| s.to_string())?
            .into_inner()
            .encoded_len();
        for (j, (name, len)) in [
            ("VerifyBearer (service)", verify),
            ("MintTicket", mint),
            ("ConsumeTicket", consume),
        ]
        .into_iter()
        .enumerate()
        {
            if i == 0 {
                sizes.push((name.to_owned(), len, 0));
            } else {
                sizes[j].2 = len;
            }
        }
    }
    Ok(sizes)
}

fn fmt_spread(values: &[f64], digits: usize) -> String {
    match spread(values) {
        Some((m, lo, hi)) if values.len() > 1 => {
            format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]")
        }
        Some((m, _, _)) => format!("{m:.digits$}"),
        None => "–".to_owned(),
    }
}

fn median(values: &[f64]) -> Option<f64> {
    spread(values).map(|s| s.0)
}

fn label(system: System, scenario: Scenario) -> String {
    let s = match scenario {
        Scenario::VerifyService => "VerifyBearer, service secret",
        Scenario::VerifyUser => "VerifyBearer, user token",
        Scenario::VerifyWorkspace => "VerifyBearer, workspace token",
        Scenario::Pairs => match system {
            System::Redis => "Redis SET EX NX + GETDEL pairs",
            System::PgAlt => "PostgreSQL INSERT + DELETE…RETURNING pairs",
            _ => "MintTicket→ConsumeTicket pairs",
        },
        Scenario::Register => "RegisterWorkspace",
    };
    let sys = match system {
        System::Noop => "no-op",
        System::Sqlite => "Tessera/SQLite",
        System::Postgres => "Tessera/PostgreSQL",
        System::Redis => "Redis",
        System::PgAlt => "PostgreSQL",
    };
    format!("{s} ({sys})")
}

/// The no-op cell a cell's ratio is taken against.
fn baseline(scenario: Scenario) -> Scenario {
    match scenario {
        Scenario::VerifyService | Scenario::VerifyUser | Scenario::VerifyWorkspace => {
            Scenario::VerifyService
        }
        other => other,
    }
}

/// Per-repetition ratios of `a` over `b` (paired by repetition).
fn ratios(a: &[Sample], b: &[Sample], f: impl Fn(&Sample) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| f(x) / f(y)).collect()
}

fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!(
        "{model}, {} CPUs (nproc), {mem} RAM, kernel {}",
        sh("nproc", &[]),
        sh("uname", &["-r"])
    )
}

struct Target {
    figure: String,
    target: String,
    measured: String,
    met: Option<bool>,
}

fn targets(f: &Figures) -> Vec<Target> {
    let mut list = Vec::new();
    let l = (10, 10);
    let get = |sys, sc| f.cells.get(&(l, sys, sc));
    let noop = get(System::Noop, Scenario::VerifyService);
    let mut ratio_target = |name: &str, sys, sc, min: f64, ceiling: bool, per: &str| {
        if let (Some(a), Some(b)) = (get(sys, sc), noop) {
            let div = if ceiling { 2.0 } else { 1.0 };
            let r = ratios(a, b, |s| s.rate);
            let r: Vec<f64> = r.iter().map(|x| x * div).collect();
            let m = median(&r).unwrap_or(0.0);
            list.push(Target {
                figure: name.to_owned(),
                target: format!("≥ {min:.2} × {per}"),
                measured: format!("{} ×", fmt_spread(&r, 2)),
                met: Some(m >= min),
            });
        }
    };
    ratio_target(
        "VerifyBearer, service secret (throughput)",
        System::Sqlite,
        Scenario::VerifyService,
        0.90,
        false,
        "no-op",
    );
    ratio_target(
        "VerifyBearer, user token",
        System::Sqlite,
        Scenario::VerifyUser,
        0.50,
        false,
        "no-op",
    );
    ratio_target(
        "VerifyBearer, workspace token",
        System::Sqlite,
        Scenario::VerifyWorkspace,
        0.50,
        false,
        "no-op",
    );
    ratio_target(
        "MintTicket + ConsumeTicket pairs (SQLite)",
        System::Sqlite,
        Scenario::Pairs,
        0.50,
        true,
        "ceiling (no-op ÷ 2)",
    );
    ratio_target(
        "the same on PostgreSQL",
        System::Postgres,
        Scenario::Pairs,
        0.30,
        true,
        "ceiling (no-op ÷ 2)",
    );
    if let (Some(a), Some(b)) = (get(System::Sqlite, Scenario::VerifyService), noop) {
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.p99 - y.p99).collect();
        let m = median(&d).unwrap_or(f64::MAX);
        list.push(Target {
            figure: "VerifyBearer, service secret (p99)".to_owned(),
            target: "≤ no-op p99 + 200 µs".to_owned(),
            // A delta: the median carries its own sign ("-80", "+436").
            measured: format!("{}{} µs", if m < 0.0 { "" } else { "+" }, fmt_spread(&d, 0)),
            met: Some(m <= 200.0),
        });
    }
    if let (Some(a), Some(b)) = (
        get(System::Sqlite, Scenario::Pairs),
        get(System::Redis, Scenario::Pairs),
    ) {
        let r = ratios(a, b, |s| s.rate);
        let m = median(&r).unwrap_or(0.0);
        list.push(Target {
            figure: "pairs vs Redis SET EX NX + GETDEL pairs".to_owned(),
            target: "report; aim ≥ 0.5".to_owned(),
            measured: format!("{} ×", fmt_spread(&r, 2)),
            met: Some(m >= 0.5),
        });
    }
    let live: Vec<u64> = f.live.keys().map(|k| k.0).collect();
    if let (Some(small), Some(large)) = (live.first(), live.last())
        && small != large
        && let (Some(a), Some(b)) = (f.live.get(&(*large, l)), f.live.get(&(*small, l)))
    {
        let r = ratios(a, b, |s| s.consume_p99);
        let m = median(&r).unwrap_or(f64::MAX);
        list.push(Target {
            figure: format!("consume p99 at {large} vs {small} live tickets"),
            target: "≤ 1.5 ×".to_owned(),
            measured: format!("{} ×", fmt_spread(&r, 2)),
            met: Some(m <= 1.5),
        });
    }
    if let Some(kib) = f.rss_kib.get(&System::Sqlite) {
        let mib: Vec<f64> = kib.iter().map(|k| *k as f64 / 1024.0).collect();
        let m = mib.iter().copied().fold(0.0, f64::max);
        list.push(Target {
            figure: "peak RSS under 50×20 (SQLite)".to_owned(),
            target: "≤ 64 MiB".to_owned(),
            measured: format!("{m:.1} MiB"),
            met: Some(m <= 64.0),
        });
    }
    for (kind, ms) in &f.startup {
        let m = median(ms).unwrap_or(f64::MAX);
        list.push(Target {
            figure: format!("start to SERVING, {kind} database"),
            target: "≤ 1 s".to_owned(),
            measured: format!("{} ms", fmt_spread(ms, 0)),
            met: Some(m <= 1000.0),
        });
    }
    list
}

/// The whole report.
pub fn render(f: &Figures) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Tessera benchmarks\n");
    if f.quick {
        let _ = writeln!(
            w,
            "**Quick mode (CI smoke run): figures are not meaningful.**\n"
        );
    }
    let _ = writeln!(
        w,
        "Written by `bash tests/bench/run.sh` (the harness in `tests/bench/`). \
         Do not edit by hand; re-run it.\n"
    );
    let _ = writeln!(w, "- Date: {}", sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]));
    let _ = writeln!(
        w,
        "- Machine: {}; shared with other work, so figures are noisy: read the ratios",
        machine()
    );
    let _ = writeln!(
        w,
        "- Build profile: `{}` for both Tessera and the no-op baseline (same tonic, codec, generated stubs)",
        f.profile
    );
    let _ = writeln!(
        w,
        "- Method: closed-loop load from `tessera-bench` (tessera-client, HDR histograms) on the same 2 cores as the server; \
         connections × concurrent streams per connection; each cell {} ms measured after a warm-up; \
         {} interleaved repetition(s) (every cell of every level in turn, then again); \
         figures are `median [min–max]`; ratios are taken per repetition against the no-op cell of the same repetition and level.",
        f.window_ms, f.reps
    );
    let _ = writeln!(
        w,
        "- Server CPU per operation: (utime + stime) of the server process from `/proc/<pid>/stat` over the window ÷ operations (a pair = 2 RPCs)."
    );
    let _ = writeln!(w, "\n## Durability of each figure\n");
    let _ = writeln!(
        w,
        "- Tessera/SQLite: WAL journal, `synchronous=NORMAL` (set by the server): a commit survives a process crash, \
         the last transactions may be lost on power failure."
    );
    let _ = writeln!(
        w,
        "- Tessera/PostgreSQL and the plain PostgreSQL alternative: `synchronous_commit = {}` (server setting, `SHOW synchronous_commit`).",
        f.pg_synchronous_commit.as_deref().unwrap_or("not measured")
    );
    let _ = writeln!(
        w,
        "- Redis: {} (no persistence unless shown otherwise: a restart loses every ticket).",
        f.redis_persistence.as_deref().unwrap_or("not measured")
    );

    let _ = writeln!(w, "\n## Targets (10×10, SQLite unless stated)\n");
    let _ = writeln!(
        w,
        "| figure | target | measured | met |\n| --- | --- | --- | --- |"
    );
    for t in targets(f) {
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "–",
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {met} |",
            t.figure, t.target, t.measured
        );
    }

    let levels: Vec<Level> = {
        let mut l: Vec<Level> = f.cells.keys().map(|k| k.0).collect();
        l.dedup();
        l
    };
    for level in levels {
        let _ = writeln!(
            w,
            "\n## Throughput and latency at {}×{}\n",
            level.0, level.1
        );
        let _ = writeln!(
            w,
            "| scenario | ops/s | × no-op | p50 µs | p99 µs | Δp99 vs no-op µs | server CPU µs/op | errors |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        let mut rows: Vec<_> = f.cells.iter().filter(|(k, _)| k.0 == level).collect();
        rows.sort_by_key(|((_, system, scenario), _)| (baseline(*scenario), *scenario, *system));
        for ((_, system, scenario), samples) in rows {
            let base = f.cells.get(&(level, System::Noop, baseline(*scenario)));
            let rates: Vec<f64> = samples.iter().map(|s| s.rate).collect();
            let p50: Vec<f64> = samples.iter().map(|s| s.p50).collect();
            let p99: Vec<f64> = samples.iter().map(|s| s.p99).collect();
            let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_us).collect();
            let errors: u64 = samples.iter().map(|s| s.errors).sum();
            let (ratio, delta) = match base {
                Some(b) if *system != System::Noop => (
                    fmt_spread(&ratios(samples, b, |s| s.rate), 2),
                    fmt_spread(
                        &samples
                            .iter()
                            .zip(b)
                            .map(|(x, y)| x.p99 - y.p99)
                            .collect::<Vec<_>>(),
                        0,
                    ),
                ),
                _ => ("1".to_owned(), "–".to_owned()),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {ratio} | {} | {} | {delta} | {} | {errors} |",
                label(*system, *scenario),
                fmt_spread(&rates, 0),
                fmt_spread(&p50, 0),
                fmt_spread(&p99, 0),
                if cpu.is_empty() {
                    "–".to_owned()
                } else {
                    fmt_spread(&cpu, 1)
                },
            );
        }
    }
    let _ = writeln!(
        w,
        "\nPairs: one op = MintTicket + ConsumeTicket (or SET + GETDEL, INSERT + DELETE); their ratio is against no-op pairs. \
         The issue's ceiling for pairs is no-op VerifyBearer throughput ÷ 2 (see Targets). \
         The Redis alternative uses one multiplexed connection per harness connection; the PostgreSQL alternative one pool of 16 \
         (Tessera's PostgreSQL default) shared by all connections × streams."
    );

    if !f.h2load.is_empty() {
        let _ = writeln!(
            w,
            "\n## h2load cross-check (VerifyBearer, service secret, pre-encoded gRPC frame)\n"
        );
        let _ = writeln!(
            w,
            "| level | system | req/s | × no-op | h2load succeeded / failed | server-counted OK / not OK |\n| --- | --- | --- | --- | --- | --- |"
        );
        for ((level, system), runs) in &f.h2load {
            let rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
            let ratio = match (system, f.h2load.get(&(*level, System::Noop))) {
                (System::Noop, _) | (_, None) => "1".to_owned(),
                (_, Some(b)) => fmt_spread(
                    &runs
                        .iter()
                        .zip(b)
                        .map(|(x, y)| x.rate / y.rate)
                        .collect::<Vec<_>>(),
                    2,
                ),
            };
            let succeeded: u64 = runs.iter().map(|r| r.succeeded).sum();
            let failed: u64 = runs.iter().map(|r| r.failed).sum();
            let server = match (
                runs.iter().map(|r| r.server_ok).sum::<Option<u64>>(),
                runs.iter().map(|r| r.server_not_ok).sum::<Option<u64>>(),
            ) {
                (Some(ok), Some(bad)) => format!("{ok} / {bad}"),
                _ => "– (no counters)".to_owned(),
            };
            let _ = writeln!(
                w,
                "| {}×{} | {} | {} | {ratio} | {succeeded} / {failed} | {server} |",
                level.0,
                level.1,
                if *system == System::Noop {
                    "no-op"
                } else {
                    "Tessera/SQLite"
                },
                fmt_spread(&rates, 0)
            );
        }
        let _ = writeln!(
            w,
            "\nh2load counts any HTTP 200 as success, gRPC errors included; the last column is Tessera's own \
             `tessera_grpc_requests_total{{method=\"VerifyBearer\"}}` delta over each run."
        );
    }

    if !f.live.is_empty() {
        let _ = writeln!(w, "\n## Consume latency vs live tickets (SQLite)\n");
        let _ = writeln!(
            w,
            "The `tickets` table is pre-filled with random 64-hex hashes and far-future expiry, then MintTicket→ConsumeTicket pairs run.\n"
        );
        let _ = writeln!(
            w,
            "| live tickets | level | pairs/s | pair p50 µs | pair p99 µs | consume p50 µs | consume p99 µs |\n| --- | --- | --- | --- | --- | --- | --- |"
        );
        for ((live, level), samples) in &f.live {
            let col = |g: &dyn Fn(&Sample) -> f64, d| {
                fmt_spread(&samples.iter().map(g).collect::<Vec<_>>(), d)
            };
            let _ = writeln!(
                w,
                "| {live} | {}×{} | {} | {} | {} | {} | {} |",
                level.0,
                level.1,
                col(&|s| s.rate, 0),
                col(&|s| s.p50, 0),
                col(&|s| s.p99, 0),
                col(&|s| s.consume_p50, 0),
                col(&|s| s.consume_p99, 0)
            );
        }
    }

    let _ = writeln!(w, "\n## Memory and start-up\n");
    for (system, kib) in &f.rss_kib {
        let mib: Vec<f64> = kib.iter().map(|k| *k as f64 / 1024.0).collect();
        let _ = writeln!(
            w,
            "- Peak RSS (VmHWM) after 50×20, {}: {} MiB",
            match system {
                System::Noop => "no-op",
                System::Sqlite => "Tessera/SQLite",
                System::Postgres => "Tessera/PostgreSQL",
                _ => "other",
            },
            fmt_spread(&mib, 1)
        );
    }
    for (kind, ms) in &f.startup {
        let _ = writeln!(
            w,
            "- Process start to health `SERVING`, {kind} SQLite database: {} ms",
            fmt_spread(ms, 0)
        );
    }
    if !f.response_bytes.is_empty() {
        let _ = writeln!(w, "\n## Response sizes (encoded protobuf bytes)\n");
        let _ = writeln!(w, "| RPC | no-op | Tessera |\n| --- | --- | --- |");
        for (name, a, b) in &f.response_bytes {
            let _ = writeln!(w, "| {name} | {a} | {b} |");
        }
    }
    if !f.notes.is_empty() {
        let _ = writeln!(w, "\n## Notes\n");
        for note in &f.notes {
            let _ = writeln!(w, "- {note}");
        }
    }
    out
}
