//! Figures and the Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::h2load::H2Result;
use crate::load::Outcome;
use crate::saturation::{self, Saturated, Shares};
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
    /// Cores used over the window.
    pub shares: Shares,
    pub saturated: Saturated,
    pub errors: u64,
}

impl Sample {
    /// The figures of `o`, a cell of `system`.
    pub fn new(o: &Outcome, system: System) -> Self {
        let cores = saturation::machine_cores();
        // Redis runs commands on one thread; the others use every core.
        let server_cap = if system == System::Redis { 1.0 } else { cores };
        let shares = Shares::from_seconds(o.server_cpu, o.gen_cpu, o.machine_cpu, o.seconds);
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
            shares,
            // The generator's tokio runtime can use every core.
            saturated: shares.decide(server_cap, cores),
            errors: o.errors,
        }
    }
}

/// Everything the report shows.
#[derive(Default)]
pub struct Figures {
    pub quick: bool,
    pub profile: String,
    pub reps: usize,
    pub window_ms: u64,
    pub cells: BTreeMap<(Level, System, Scenario), Vec<Sample>>,
    pub h2load: BTreeMap<(Level, Scenario, System), Vec<H2Result>>,
    pub live: BTreeMap<(u64, Level), Vec<Sample>>,
    pub startup: BTreeMap<&'static str, Vec<f64>>,
    pub rss_kib: BTreeMap<System, Vec<u64>>,
    pub pg_synchronous_commit: Option<String>,
    pub redis_persistence: Option<String>,
    pub response_bytes: Vec<crate::sizes::Size>,
    pub notes: Vec<String>,
}

pub fn fmt_spread(values: &[f64], digits: usize) -> String {
    match spread(values) {
        Some((m, lo, hi)) if values.len() > 1 => {
            format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]")
        }
        Some((m, _, _)) => format!("{m:.digits$}"),
        None => "–".to_owned(),
    }
}

/// Median [min–max] of the shares present, in % of one core.
fn percent(cores: impl Iterator<Item = Option<f64>>) -> String {
    fmt_spread(&cores.flatten().map(|c| c * 100.0).collect::<Vec<_>>(), 0)
}

/// The server, generator and other-process CPU columns (`a | b | c`).
pub fn share_columns(shares: impl Iterator<Item = Shares> + Clone) -> String {
    format!(
        "{} | {} | {}",
        percent(shares.clone().map(|s| s.server)),
        percent(shares.clone().map(|s| s.generator)),
        percent(shares.map(|s| s.other())),
    )
}

pub fn median(values: &[f64]) -> Option<f64> {
    spread(values).map(|s| s.0)
}

/// The name of a system in tables.
pub fn system_name(system: System) -> &'static str {
    match system {
        System::Noop => "no-op",
        System::Sqlite => "Tessera/SQLite",
        System::Postgres => "Tessera/PostgreSQL",
        System::Redis => "Redis",
        System::PgAlt => "PostgreSQL",
        System::BaoRaft => "OpenBao/raft",
        System::BaoInmem => "OpenBao/inmem",
    }
}

fn label(system: System, scenario: Scenario) -> String {
    let s = match scenario {
        Scenario::VerifyService => "VerifyBearer, service secret",
        Scenario::VerifyUser => "VerifyBearer, user token",
        Scenario::VerifyWorkspace => "VerifyBearer, workspace token",
        Scenario::Pairs => match system {
            System::Redis => "Redis SET EX NX + GETDEL pairs",
            System::PgAlt => "PostgreSQL INSERT + DELETE…RETURNING pairs",
            System::BaoRaft | System::BaoInmem => "OpenBao wrap + unwrap pairs",
            _ => "MintTicket→ConsumeTicket pairs",
        },
        Scenario::Register => "RegisterWorkspace",
    };
    format!("{s} ({})", system_name(system))
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
        "- Build profile: `{}` for both Tessera and the no-op baseline (same tonic, codec, generated stubs, allocator: jemalloc)",
        f.profile
    );
    let _ = writeln!(
        w,
        "- Generators, on the same cores as the server: **h2load** (`-t 1`, one thread; pre-encoded gRPC frames over h2c, \
         `-c` connections × `-m` streams; HTTP/1.1 keep-alive for OpenBao, connections × streams connections with one request \
         in flight each) for unary VerifyBearer and OpenBao's token lookup, a fixed number of calls per cell; \
         the closed-loop **`tessera-bench`** generator (tessera-client, HDR histograms; hyper HTTP/1.1 for OpenBao) \
         for everything else, each cell {} ms measured after a warm-up.",
        f.window_ms
    );
    let _ = writeln!(
        w,
        "- {} interleaved repetition(s) (every cell of every level in turn, then again); figures are `median [min–max]`; \
         ratios are taken per repetition against the cell of the same repetition and level.",
        f.reps
    );
    let _ = writeln!(
        w,
        "- CPU: (utime + stime) from `/proc/<pid>/stat` of the server, and of the generator itself (h2load read as a zombie \
         before it is reaped; `tessera-bench` from `/proc/self/stat`), over the window; per call = server CPU ÷ calls \
         (a pair = 2 RPCs); shares in % of one core."
    );
    let _ = writeln!(w, "- Saturated: {}.", saturation::RULE);
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
    let _ = writeln!(
        w,
        "- OpenBao `raft` (integrated storage): every write (wrap, unwrap, token creation) is appended to the raft log \
         in a Bolt file and fsync'd before it is answered. OpenBao `inmem`: nothing is written; a restart loses everything. \
         Both on loopback, TLS off, `disable_mlock`, one unseal key, the root token as the caller."
    );

    let _ = writeln!(w, "\n## Targets (10×10, SQLite unless stated)\n");
    let _ = writeln!(
        w,
        "| figure | target | measured | saturated | met |\n| --- | --- | --- | --- | --- |"
    );
    for t in crate::targets::targets(f) {
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "–",
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {met} |",
            t.figure, t.target, t.measured, t.saturated
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
            "\n## tessera-bench generator at {}×{}\n",
            level.0, level.1
        );
        let _ = writeln!(
            w,
            "| scenario | ops/s | × no-op | p50 µs | p99 µs | Δp99 vs no-op µs | server CPU µs/op | server CPU % | generator CPU % | other CPU % | saturated | errors |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
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
                "| {} | {} | {ratio} | {} | {} | {delta} | {} | {} | {} | {errors} |",
                label(*system, *scenario),
                fmt_spread(&rates, 0),
                fmt_spread(&p50, 0),
                fmt_spread(&p99, 0),
                fmt_spread(&cpu, 1),
                share_columns(samples.iter().map(|s| s.shares)),
                saturation::summary(&samples.iter().map(|s| s.saturated).collect::<Vec<_>>()),
            );
        }
    }
    let _ = writeln!(
        w,
        "\nPairs: one op = MintTicket + ConsumeTicket (or SET + GETDEL, INSERT + DELETE, wrap + unwrap); their ratio is against \
         no-op pairs, the ceiling of the targets (two no-op RPCs in turn, same generator). \
         VerifyBearer here uses the service secret only: beside h2load's figure it shows what this generator measures. \
         The Redis alternative uses one multiplexed connection per harness connection; the PostgreSQL alternative one pool of 16 \
         (Tessera's PostgreSQL default) shared by all connections × streams; OpenBao one HTTP/1.1 keep-alive connection per \
         stream (connections × streams), only at levels of at most {} in flight. PostgreSQL's server CPU is not read \
         (one process per connection).",
        crate::BAO_MAX_IN_FLIGHT
    );

    crate::report_h2load::render(w, f);

    if !f.live.is_empty() {
        let _ = writeln!(w, "\n## Consume latency vs live tickets (SQLite)\n");
        let _ = writeln!(
            w,
            "The `tickets` table is pre-filled with random 64-hex hashes and far-future expiry, then MintTicket→ConsumeTicket pairs run.\n"
        );
        let _ = writeln!(
            w,
            "| live tickets | level | pairs/s | pair p50 µs | pair p99 µs | consume p50 µs | consume p99 µs | server CPU % | generator CPU % | other CPU % | saturated |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for ((live, level), samples) in &f.live {
            let col = |g: &dyn Fn(&Sample) -> f64, d| {
                fmt_spread(&samples.iter().map(g).collect::<Vec<_>>(), d)
            };
            let _ = writeln!(
                w,
                "| {live} | {}×{} | {} | {} | {} | {} | {} | {} | {} |",
                level.0,
                level.1,
                col(&|s| s.rate, 0),
                col(&|s| s.p50, 0),
                col(&|s| s.p99, 0),
                col(&|s| s.consume_p50, 0),
                col(&|s| s.consume_p99, 0),
                share_columns(samples.iter().map(|s| s.shares)),
                saturation::summary(&samples.iter().map(|s| s.saturated).collect::<Vec<_>>()),
            );
        }
    }

    let _ = writeln!(w, "\n## Memory and start-up\n");
    for (system, kib) in &f.rss_kib {
        let mib: Vec<f64> = kib.iter().map(|k| *k as f64 / 1024.0).collect();
        let _ = writeln!(
            w,
            "- Peak RSS (VmHWM) after 50×20, {}: {} MiB",
            system_name(*system),
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
        let _ = writeln!(
            w,
            "| RPC | no-op | Tessera | same bytes |\n| --- | --- | --- | --- |"
        );
        for size in &f.response_bytes {
            let same = match size.identical {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "– (fresh ticket)",
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {same} |",
                size.rpc, size.noop, size.tessera
            );
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
