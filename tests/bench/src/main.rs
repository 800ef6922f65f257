//! `tessera-bench`: runs the no-op baseline, Tessera (SQLite and
//! PostgreSQL), Redis, plain PostgreSQL and OpenBao under the same load,
//! interleaved, and writes the figures as Markdown (`BENCHMARKS.md`).
//! Unary VerifyBearer is driven by h2load (see `h2load`), everything else
//! by the closed-loop generator in `load`; every figure carries the CPU
//! share of the server and of the generator (see `saturation`).
//!
//! Exits non-zero only when the harness itself breaks (a server that does
//! not start, a scenario with no successful call); never on a timing.

#![forbid(unsafe_code)]

mod h2load;
mod load;
mod openbao;
mod procs;
mod report;
mod report_h2load;
mod saturation;
mod servers;
mod sizes;
mod targets;
mod unary;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use crate::load::{Conn, Work};
use crate::openbao::{Bao, Storage};
use crate::procs::Proc;
use crate::report::{Figures, Sample};
use crate::servers::{
    Tessera, drop_pg_database, fill_tickets, fresh_pg_database, grpc_client, start_openbao,
    start_tessera, tessera_env, write_principals,
};

/// The service secret the harness configures (`TESSERA_SERVICE_TOKEN_BENCH`).
pub const SERVICE_SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";

#[derive(Parser, Debug)]
#[command(about = "Tessera load harness")]
struct Args {
    /// Smoke mode for CI: 10×10 only, one short repetition, no 1M tickets,
    /// no OpenBao.
    #[arg(long)]
    quick: bool,
    /// Where to write the Markdown report.
    #[arg(long)]
    out: PathBuf,
    /// Directory holding the `tessera` and `noop-server` binaries.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Build profile of both binaries, for the report.
    #[arg(long, default_value = "release")]
    profile: String,
    /// Measured window per cell, ms.
    #[arg(long, default_value_t = 2000)]
    window_ms: u64,
    /// Unmeasured warm-up per cell, ms.
    #[arg(long, default_value_t = 500)]
    warmup_ms: u64,
    /// Interleaved repetitions.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// PostgreSQL server (a database on it is used to create fresh ones).
    #[arg(
        long,
        env = "TESSERA_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// Redis server.
    #[arg(
        long,
        env = "TESSERA_BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    redis_url: String,
    /// Live tickets for the large-table consume latency (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    million: u64,
    /// h2load requests per VerifyBearer (and OpenBao lookup) cell.
    #[arg(long, default_value_t = 60_000)]
    h2load_requests: u64,
    /// The `bao` binary (default: `bao` on the PATH; OpenBao is skipped
    /// with a note when there is none or it does not start).
    #[arg(long, env = "TESSERA_BENCH_BAO")]
    bao: Option<PathBuf>,
    /// Skip OpenBao.
    #[arg(long)]
    no_openbao: bool,
    /// Only these levels, as `CONNSxSTREAMS` (repeatable; default: all).
    #[arg(long = "level", value_parser = parse_level)]
    only_levels: Vec<Level>,
    /// Only these scenarios (repeatable; default: all). The verify-*
    /// scenarios are the h2load cells of each token kind (verify-user also
    /// OpenBao's lookup); verify-service also the tessera-bench
    /// VerifyBearer cells.
    #[arg(long = "scenario", value_enum)]
    only_scenarios: Vec<Scenario>,
    /// Closed-loop streams sending ConsumeTicket for a ticket holding a
    /// NUL beside every Tessera pairs cell, as a service relaying garbage
    /// would (each stream puts at most one such write in a group-commit
    /// batch); their calls are not counted in the cell's figures.
    #[arg(long, default_value_t = 0)]
    poison_streams: usize,
}

impl Args {
    /// Whether `scenario` is measured (no `--scenario` given: all are).
    fn wants(&self, scenario: Scenario) -> bool {
        self.only_scenarios.is_empty() || self.only_scenarios.contains(&scenario)
    }
}

fn parse_level(text: &str) -> Result<Level, String> {
    let (conns, streams) = text.split_once('x').ok_or("expected CONNSxSTREAMS")?;
    let parse = |n: &str| n.parse::<usize>().map_err(|e| format!("{n}: {e}"));
    Ok((parse(conns)?, parse(streams)?))
}

/// A system under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    Noop,
    Sqlite,
    Postgres,
    Redis,
    PgAlt,
    /// OpenBao with integrated (raft) storage.
    BaoRaft,
    /// OpenBao with in-memory storage.
    BaoInmem,
}

impl System {
    /// The OpenBao storage of an OpenBao system.
    fn bao_storage(self) -> Option<Storage> {
        match self {
            System::BaoRaft => Some(Storage::Raft),
            System::BaoInmem => Some(Storage::Inmem),
            _ => None,
        }
    }
}

/// What a cell's streams do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    VerifyService,
    VerifyUser,
    VerifyWorkspace,
    Pairs,
    Register,
}

/// Connections × concurrent streams per connection.
pub type Level = (usize, usize);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

struct Setup {
    args: Args,
    bin_tessera: PathBuf,
    noop: Proc,
    bao: Vec<Bao>,
    sqlite: Tessera,
    postgres: Option<Tessera>,
    redis: Option<redis::Client>,
    /// The Redis server's pid, when it runs on this machine.
    redis_pid: Option<u32>,
    pg_alt: Option<DatabaseConnection>,
    dir: tempfile::TempDir,
    notes: Vec<String>,
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.reps = 1;
        args.window_ms = args.window_ms.min(400);
        args.warmup_ms = args.warmup_ms.min(150);
        args.million = 0;
        args.h2load_requests = args.h2load_requests.min(3000);
        args.no_openbao = true;
    }
    let started = std::time::Instant::now();
    match bench(args).await {
        Ok(()) => eprintln!(
            "tessera-bench: done in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("tessera-bench: harness failure: {e}");
            std::process::exit(1);
        }
    }
}

async fn bench(args: Args) -> Result<(), String> {
    let bin_tessera = args.bin_dir.join("tessera");
    let bin_noop = args.bin_dir.join("noop-server");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut figures = Figures::default();
    let mut notes = Vec::new();
    let pid = std::process::id();
    let levels: Vec<Level> = if !args.only_levels.is_empty() {
        args.only_levels.clone()
    } else if args.quick {
        vec![(10, 10)]
    } else {
        vec![(1, 1), (10, 10), (50, 20)]
    };
    let max_conns = levels.iter().map(|l| l.0).max().unwrap_or(1);

    // Start to SERVING, fresh and existing database, before any load.
    for rep in 0..args.reps {
        let file = dir.path().join(format!("startup-{rep}.db"));
        let url = format!("sqlite:{}?mode=rwc", file.display());
        for kind in ["fresh", "existing"] {
            let proc = Proc::tessera(&bin_tessera, &url, &tessera_env())?;
            let took = proc.wait_serving().await?;
            figures
                .startup
                .entry(kind)
                .or_default()
                .push(took.as_secs_f64() * 1e3);
        }
    }

    let sqlite_url = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("tessera.db").display()
    );
    let sqlite = start_tessera(&bin_tessera, &sqlite_url, max_conns).await?;
    // The no-op answers each token kind with the principal Tessera answers.
    let principals = dir.path().join("principals.tsv");
    write_principals(&sqlite, &principals).await?;
    let noop = Proc::noop(&bin_noop, &principals)?;
    let bao = start_openbao(&args, dir.path(), &mut notes).await;

    let pg_name = format!("tessera_bench_{pid}");
    let alt_name = format!("tessera_bench_alt_{pid}");
    let postgres = match fresh_pg_database(&args.postgres_url, &pg_name).await {
        Ok(url) => Some(start_tessera(&bin_tessera, &url, 1).await?),
        Err(e) => {
            notes.push(format!("PostgreSQL not measured: {e}"));
            None
        }
    };
    let pg_alt = match fresh_pg_database(&args.postgres_url, &alt_name).await {
        Ok(url) => {
            let mut options = sea_orm::ConnectOptions::new(url);
            options.max_connections(16).sqlx_logging(false);
            let db = Database::connect(options)
                .await
                .map_err(|e| e.to_string())?;
            db.execute_unprepared(
                "CREATE TABLE alt_tickets (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, \
                 provider TEXT NOT NULL, purpose TEXT NOT NULL, minted_at BIGINT NOT NULL, \
                 expires_at BIGINT NOT NULL)",
            )
            .await
            .map_err(|e| e.to_string())?;
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SHOW synchronous_commit",
                ))
                .await
                .map_err(|e| e.to_string())?;
            let value: String = row
                .and_then(|r| r.try_get_by_index(0).ok())
                .unwrap_or_else(|| "unknown".to_owned());
            figures.pg_synchronous_commit = Some(value);
            Some(db)
        }
        Err(e) => {
            notes.push(format!("PostgreSQL alternative not measured: {e}"));
            None
        }
    };
    let mut redis_pid = None;
    let redis = match redis::Client::open(args.redis_url.as_str()) {
        Ok(client) => match client.get_multiplexed_async_connection().await {
            Ok(mut conn) => {
                let save: Vec<String> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("save")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                let aof: Vec<String> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("appendonly")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                // Its pid, for its CPU share (Redis on this machine only).
                let info: String = redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                redis_pid = info
                    .lines()
                    .find_map(|l| l.strip_prefix("process_id:"))
                    .and_then(|p| p.trim().parse().ok());
                figures.redis_persistence = Some(format!(
                    "save=\"{}\", appendonly={}",
                    save.get(1).cloned().unwrap_or_default(),
                    aof.get(1).cloned().unwrap_or_default()
                ));
                Some(client)
            }
            Err(e) => {
                notes.push(format!("Redis not measured: {e}"));
                None
            }
        },
        Err(e) => {
            notes.push(format!("Redis not measured: {e}"));
            None
        }
    };

    let setup = Setup {
        args,
        bin_tessera,
        noop,
        bao,
        sqlite,
        postgres,
        redis,
        redis_pid,
        pg_alt,
        dir,
        notes,
    };
    let result = measure(&setup, &levels, &mut figures).await;
    drop_pg_database(&setup.args.postgres_url, &pg_name).await;
    drop_pg_database(&setup.args.postgres_url, &alt_name).await;
    result?;
    figures.notes.extend(setup.notes.iter().cloned());
    if setup.args.poison_streams > 0 {
        figures.notes.push(format!(
            "poisoned: {} closed-loop stream(s) of ConsumeTicket for a ticket holding a NUL ran beside every Tessera pairs cell (not counted)",
            setup.args.poison_streams
        ));
    }
    figures.quick = setup.args.quick;
    figures.profile = setup.args.profile.clone();
    figures.reps = setup.args.reps;
    figures.window_ms = setup.args.window_ms;
    let text = report::render(&figures);
    std::fs::write(&setup.args.out, text)
        .map_err(|e| format!("write {}: {e}", setup.args.out.display()))?;
    eprintln!("tessera-bench: wrote {}", setup.args.out.display());
    Ok(())
}

/// The cells of one level, in their interleaved order.
fn cells(setup: &Setup) -> Vec<(System, Scenario)> {
    use Scenario::*;
    use System::*;
    let mut list = vec![
        // VerifyBearer under this generator only with the service secret:
        // beside h2load's figure it shows what this generator measures.
        (Noop, VerifyService),
        (Sqlite, VerifyService),
        (Noop, Pairs),
        (Sqlite, Pairs),
    ];
    if setup.postgres.is_some() {
        list.push((Postgres, Pairs));
    }
    if setup.redis.is_some() {
        list.push((Redis, Pairs));
    }
    if setup.pg_alt.is_some() {
        list.push((PgAlt, Pairs));
    }
    for bao in &setup.bao {
        list.push((
            match bao.storage {
                Storage::Raft => BaoRaft,
                Storage::Inmem => BaoInmem,
            },
            Pairs,
        ));
    }
    list.push((Noop, Register));
    list.push((Sqlite, Register));
    list.retain(|&(_, scenario)| setup.args.wants(scenario));
    list
}

async fn connections(
    setup: &Setup,
    system: System,
    scenario: Scenario,
    tessera: Option<&Tessera>,
    level: Level,
) -> Result<(Vec<Conn>, Option<u32>), String> {
    let conns = level.0;
    let mut list = Vec::new();
    match system {
        System::Redis => {
            let client = setup.redis.as_ref().ok_or("no Redis")?;
            for _ in 0..conns {
                let conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                list.push(Conn::Redis(conn));
            }
            let local = setup.redis_pid.filter(|p| procs::cpu_seconds(*p).is_some());
            return Ok((list, local));
        }
        System::PgAlt => {
            let db = setup.pg_alt.clone().ok_or("no PostgreSQL")?;
            // One pool of 16 (Tessera's PostgreSQL default) shared by every stream.
            list.push(Conn::Pg(db));
            return Ok((list, None));
        }
        System::BaoRaft | System::BaoInmem => {
            let bao = setup.bao_of(system).ok_or("no OpenBao")?;
            // HTTP/1.1 does not multiplex: conns × streams connections.
            for _ in 0..conns * level.1 {
                list.push(Conn::Bao(Box::new(bao.connect().await?)));
            }
            return Ok((list, Some(bao.pid())));
        }
        _ => {}
    }
    let (endpoint, pid, tessera) = match system {
        System::Noop => (setup.noop.endpoint(), setup.noop.pid(), &setup.sqlite),
        _ => {
            let t = tessera.ok_or("no Tessera for this system")?;
            (t.proc.endpoint(), t.proc.pid(), t)
        }
    };
    for c in 0..conns {
        let (bearer, work) = match scenario {
            Scenario::VerifyService => (SERVICE_SECRET, Work::Verify(SERVICE_SECRET.to_owned())),
            Scenario::VerifyUser => (SERVICE_SECRET, Work::Verify(tessera.admin_token.clone())),
            Scenario::VerifyWorkspace => (
                SERVICE_SECRET,
                Work::Verify(tessera.workspace_token.clone()),
            ),
            Scenario::Pairs => (SERVICE_SECRET, Work::Pair),
            Scenario::Register => {
                let (id, token) = &tessera.workspaces[c % tessera.workspaces.len()];
                (token.as_str(), Work::Register(id.clone()))
            }
        };
        list.push(Conn::Grpc(
            Box::new(grpc_client(&endpoint, bearer).await?),
            work,
        ));
    }
    Ok((list, Some(pid)))
}

/// The `--poison-streams` beside a Tessera pairs cell, for `length`: a
/// task answering their calls per second.
async fn poison(
    setup: &Setup,
    system: System,
    scenario: Scenario,
    tessera: Option<&Tessera>,
    length: Duration,
) -> Result<Option<tokio::task::JoinHandle<f64>>, String> {
    let streams = setup.args.poison_streams;
    let tessera = match (system, scenario, tessera) {
        (System::Sqlite | System::Postgres, Scenario::Pairs, Some(t)) if streams > 0 => t,
        _ => return Ok(None),
    };
    let client = grpc_client(&tessera.proc.endpoint(), SERVICE_SECRET).await?;
    Ok(Some(load::poison(client, streams, length)))
}

/// Streams per connection: the pooled PG alternative runs `conns ×
/// streams` tasks on one pool, OpenBao one per HTTP/1.1 connection.
fn streams(system: System, level: Level) -> usize {
    match system {
        System::PgAlt => level.0 * level.1,
        System::BaoRaft | System::BaoInmem => 1,
        _ => level.1,
    }
}

/// OpenBao's HTTP/1.1 cells open one connection per stream: only at
/// levels of at most this many in flight.
pub const BAO_MAX_IN_FLIGHT: usize = 100;

impl Setup {
    /// The running OpenBao of `system`.
    fn bao_of(&self, system: System) -> Option<&Bao> {
        let storage = system.bao_storage()?;
        self.bao.iter().find(|b| b.storage == storage)
    }
}

async fn measure(setup: &Setup, levels: &[Level], figures: &mut Figures) -> Result<(), String> {
    let args = &setup.args;
    let warmup = Duration::from_millis(args.warmup_ms);
    let window = Duration::from_millis(args.window_ms);
    let unary = unary::Unary::prepare(setup, figures)?;

    // Large-table consume latency: two more servers, 1k and 1M live tickets.
    let mut big: Vec<(u64, Tessera)> = Vec::new();
    if args.million > 0 {
        for live in [1_000, args.million] {
            let file = setup.dir.path().join(format!("live-{live}.db"));
            let url = format!("sqlite:{}?mode=rwc", file.display());
            let t = start_tessera(&setup.bin_tessera, &url, 1).await?;
            let filled = std::time::Instant::now();
            fill_tickets(&url, live).await?;
            eprintln!(
                "tessera-bench: {live} live tickets in {:.1} s",
                filled.elapsed().as_secs_f64()
            );
            big.push((live, t));
        }
    }

    for rep in 0..args.reps {
        for &level in levels {
            for (system, scenario) in cells(setup) {
                let tessera = match system {
                    System::Postgres => setup.postgres.as_ref(),
                    _ => Some(&setup.sqlite),
                };
                if system.bao_storage().is_some() && level.0 * level.1 > BAO_MAX_IN_FLIGHT {
                    continue;
                }
                let (conns, pid) = connections(setup, system, scenario, tessera, level).await?;
                let poison = poison(setup, system, scenario, tessera, warmup + window).await?;
                let outcome = load::run(conns, streams(system, level), warmup, window, pid).await;
                let poisoned = match poison {
                    Some(task) => {
                        format!(" poison {:.0}/s", task.await.map_err(|e| e.to_string())?)
                    }
                    None => String::new(),
                };
                eprintln!(
                    "rep {rep} {}x{} {system:?} {scenario:?}: {:.0}/s p99 {} µs errors {}{poisoned}{}",
                    level.0,
                    level.1,
                    outcome.rate(),
                    outcome.latency.value_at_quantile(0.99),
                    outcome.errors,
                    outcome
                        .first_error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
                if outcome.ok == 0 {
                    return Err(format!(
                        "{system:?} {scenario:?} at {level:?}: no successful call ({})",
                        outcome.first_error.unwrap_or_default()
                    ));
                }
                figures
                    .cells
                    .entry((level, system, scenario))
                    .or_default()
                    .push(Sample::new(&outcome, system));
            }
            if level == (50, 20) {
                if let Some(kib) = setup.sqlite.proc.peak_rss_kib() {
                    figures.rss_kib.entry(System::Sqlite).or_default().push(kib);
                }
                if let Some(kib) = setup.noop.peak_rss_kib() {
                    figures.rss_kib.entry(System::Noop).or_default().push(kib);
                }
                if let Some(kib) = setup.postgres.as_ref().and_then(|p| p.proc.peak_rss_kib()) {
                    figures
                        .rss_kib
                        .entry(System::Postgres)
                        .or_default()
                        .push(kib);
                }
            }
        }
        if let Some(unary) = &unary {
            unary.rep(setup, rep, figures).await?;
        }
        for (live, t) in &big {
            for level in [(1, 1), (10, 10)] {
                let (conns, pid) =
                    connections(setup, System::Sqlite, Scenario::Pairs, Some(t), level).await?;
                let outcome = load::run(conns, level.1, warmup, window, pid).await;
                if outcome.ok == 0 {
                    return Err(format!("{live} live tickets: no successful pair"));
                }
                eprintln!(
                    "rep {rep} {live} live tickets {level:?}: consume p99 {} µs",
                    outcome.consume.value_at_quantile(0.99)
                );
                figures
                    .live
                    .entry((*live, level))
                    .or_default()
                    .push(Sample::new(&outcome, System::Sqlite));
            }
        }
    }
    figures.response_bytes = sizes::sizes(
        &setup.noop.endpoint(),
        &setup.sqlite.proc.endpoint(),
        &[
            ("service secret", SERVICE_SECRET),
            ("user token", &setup.sqlite.admin_token),
            ("workspace token", &setup.sqlite.workspace_token),
        ],
    )
    .await?;
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Sorted median, min and max.
pub fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some((v[v.len() / 2], v[0], v[v.len() - 1]))
}
