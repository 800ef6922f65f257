//! The targets table: each figure against its target, with "met" computed
//! from the medians of per-repetition ratios (never written by hand), and
//! which process bounded the figures it compares.

use crate::report::{Figures, Sample, fmt_spread, median};
use crate::saturation;
use crate::{Level, Scenario, System};

/// One row of the table.
pub struct Target {
    pub figure: String,
    pub target: String,
    pub measured: String,
    /// Which process was saturated, for each side of the figure.
    pub saturated: String,
    pub met: Option<bool>,
}

/// The level of every target unless stated.
const LEVEL: Level = (10, 10);

/// One side of a figure: its per-repetition values and saturations.
struct Side {
    name: &'static str,
    values: Vec<f64>,
    saturated: Vec<saturation::Saturated>,
}

/// The cell of the closed-loop generator, by `f` of each sample.
fn cell(
    figures: &Figures,
    level: Level,
    system: System,
    scenario: Scenario,
    name: &'static str,
    f: impl Fn(&Sample) -> f64,
) -> Option<Side> {
    let samples = figures.cells.get(&(level, system, scenario))?;
    Some(Side {
        name,
        values: samples.iter().map(f).collect(),
        saturated: samples.iter().map(|s| s.saturated).collect(),
    })
}

/// The h2load cell, by throughput or (`cpu`) server CPU per call.
fn h2(
    figures: &Figures,
    kind: Scenario,
    system: System,
    name: &'static str,
    cpu: bool,
) -> Option<Side> {
    let runs = figures.h2load.get(&(LEVEL, kind, system))?;
    Some(Side {
        name,
        values: runs
            .iter()
            .map(|r| {
                if cpu {
                    r.server_cpu_us.unwrap_or(f64::NAN)
                } else {
                    r.rate
                }
            })
            .collect(),
        saturated: runs.iter().map(|r| r.saturated).collect(),
    })
}

/// The bound of a target.
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

/// A ratio row: per-repetition `a ÷ b`, its median against `bound`.
fn ratio(figure: String, per: &str, a: Option<Side>, b: Option<Side>, bound: Bound) -> Target {
    let target = match bound {
        Bound::AtLeast(x) => format!("≥ {x:.2} × {per}"),
        Bound::AtMost(x) => format!("≤ {x:.2} × {per}"),
    }
    .trim_end()
    .to_owned();
    let (Some(a), Some(b)) = (a, b) else {
        return Target {
            figure,
            target,
            measured: "not measured".to_owned(),
            saturated: "–".to_owned(),
            met: None,
        };
    };
    let r: Vec<f64> = a.values.iter().zip(&b.values).map(|(x, y)| x / y).collect();
    let m = median(&r);
    Target {
        figure,
        target,
        measured: format!("{} ×", fmt_spread(&r, 2)),
        saturated: format!(
            "{}: {}; {}: {}",
            a.name,
            saturation::summary(&a.saturated),
            b.name,
            saturation::summary(&b.saturated)
        ),
        met: m.map(|m| match bound {
            Bound::AtLeast(x) => m >= x,
            Bound::AtMost(x) => m <= x,
        }),
    }
}

/// Every target, in the order of the table.
pub fn targets(f: &Figures) -> Vec<Target> {
    use Bound::*;
    use Scenario::*;
    use System::*;
    let rate = |s: &Sample| s.rate;
    let pairs = |sys, name| cell(f, LEVEL, sys, Pairs, name, rate);
    let mut list = vec![
        ratio(
            "VerifyBearer, service secret, h2load (throughput)".to_owned(),
            "no-op",
            h2(f, VerifyService, Sqlite, "Tessera", false),
            h2(f, VerifyService, Noop, "no-op", false),
            AtLeast(0.90),
        ),
        ratio(
            "VerifyBearer, service secret, h2load (server CPU µs per call)".to_owned(),
            "no-op",
            h2(f, VerifyService, Sqlite, "Tessera", true),
            h2(f, VerifyService, Noop, "no-op", true),
            AtMost(1.10),
        ),
        ratio(
            "VerifyBearer, user token (DB lookup), h2load".to_owned(),
            "no-op",
            h2(f, VerifyUser, Sqlite, "Tessera", false),
            h2(f, VerifyUser, Noop, "no-op", false),
            AtLeast(0.60),
        ),
        ratio(
            "MintTicket + ConsumeTicket pairs, SQLite".to_owned(),
            "ceiling (no-op pairs)",
            pairs(Sqlite, "Tessera"),
            pairs(Noop, "no-op"),
            AtLeast(0.60),
        ),
        ratio(
            format!(
                "the same on PostgreSQL (`synchronous_commit = {}`)",
                f.pg_synchronous_commit.as_deref().unwrap_or("?")
            ),
            "ceiling (no-op pairs)",
            pairs(Postgres, "Tessera"),
            pairs(Noop, "no-op"),
            AtLeast(0.35),
        ),
        Target {
            figure: "the same with a sealed-ticket design".to_owned(),
            target: "≥ 0.80 × ceiling (no-op pairs)".to_owned(),
            measured:
                "not taken: this build stores every ticket (a prototype gained 5 %; see the README)"
                    .to_owned(),
            saturated: "–".to_owned(),
            met: None,
        },
    ];
    list.push(redis(f));
    for (sys, storage) in [(BaoRaft, "raft"), (BaoInmem, "inmem")] {
        list.push(ratio(
            format!("pairs vs OpenBao wrap + unwrap ({storage})"),
            "OpenBao",
            pairs(Sqlite, "Tessera"),
            pairs(sys, "OpenBao"),
            AtLeast(10.0),
        ));
    }
    for (sys, storage) in [(BaoRaft, "raft"), (BaoInmem, "inmem")] {
        list.push(ratio(
            format!("VerifyBearer, user token vs OpenBao `auth/token/lookup` ({storage}), h2load"),
            "OpenBao",
            h2(f, VerifyUser, Sqlite, "Tessera", false),
            h2(f, VerifyUser, sys, "OpenBao", false),
            AtLeast(5.0),
        ));
    }
    let live: Vec<u64> = f.live.keys().map(|k| k.0).collect();
    let side = |live: Option<&u64>, name| {
        let samples = f.live.get(&(*live?, LEVEL))?;
        Some(Side {
            name,
            values: samples.iter().map(|s| s.consume_p99).collect(),
            saturated: samples.iter().map(|s| s.saturated).collect(),
        })
    };
    list.push(ratio(
        "consume p99, 1M vs 1k live tickets".to_owned(),
        "",
        side(live.last().filter(|l| live.first() != Some(l)), "1M"),
        side(live.first(), "1k"),
        AtMost(1.5),
    ));
    let rss = f
        .rss_kib
        .get(&Sqlite)
        .map(|kib| kib.iter().map(|k| *k as f64 / 1024.0).fold(0.0, f64::max));
    list.push(Target {
        figure: "peak RSS at 50×20 (SQLite, highest of the repetitions)".to_owned(),
        target: "≤ 48 MiB".to_owned(),
        measured: rss.map_or("not measured".to_owned(), |m| format!("{m:.1} MiB")),
        saturated: "–".to_owned(),
        met: rss.map(|m| m <= 48.0),
    });
    list
}

/// Pairs vs Redis, beside the ceiling's own ratio to Redis: how much of the
/// gap is gRPC and how much is Tessera.
fn redis(f: &Figures) -> Target {
    let rates = |sys| {
        f.cells
            .get(&(LEVEL, sys, Scenario::Pairs))
            .map(|s| s.iter().map(|s| s.rate).collect::<Vec<_>>())
    };
    let (Some(t), Some(n), Some(r)) = (
        rates(System::Sqlite),
        rates(System::Noop),
        rates(System::Redis),
    ) else {
        return Target {
            figure: "pairs vs Redis SET EX NX + GETDEL".to_owned(),
            target: "report, beside the ceiling's ratio to Redis".to_owned(),
            measured: "not measured".to_owned(),
            saturated: "–".to_owned(),
            met: None,
        };
    };
    let ours: Vec<f64> = t.iter().zip(&r).map(|(a, b)| a / b).collect();
    let ceiling: Vec<f64> = n.iter().zip(&r).map(|(a, b)| a / b).collect();
    let saturated = |sys, name| {
        f.cells
            .get(&(LEVEL, sys, Scenario::Pairs))
            .map_or(String::new(), |s| {
                format!(
                    "{name}: {}",
                    saturation::summary(&s.iter().map(|s| s.saturated).collect::<Vec<_>>())
                )
            })
    };
    Target {
        figure: "pairs vs Redis SET EX NX + GETDEL".to_owned(),
        target: "report, beside the ceiling's ratio to Redis".to_owned(),
        measured: format!(
            "Tessera {} × Redis; ceiling (no-op pairs) {} × Redis",
            fmt_spread(&ours, 2),
            fmt_spread(&ceiling, 2)
        ),
        saturated: [
            saturated(System::Sqlite, "Tessera"),
            saturated(System::Noop, "no-op"),
            saturated(System::Redis, "Redis"),
        ]
        .join("; "),
        met: None,
    }
}
