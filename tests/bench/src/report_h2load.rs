//! The h2load section of the report: VerifyBearer per token kind on
//! Tessera and on the no-op, and OpenBao's token lookup.

use std::fmt::Write as _;

use crate::report::{Figures, fmt_spread, share_columns, system_name};
use crate::{Scenario, System, saturation};

fn kind_name(kind: Scenario) -> &'static str {
    match kind {
        Scenario::VerifyService => "service secret",
        Scenario::VerifyUser => "user token",
        Scenario::VerifyWorkspace => "workspace token",
        _ => "?",
    }
}

/// Writes the section (nothing when no h2load cell ran).
pub fn render(w: &mut String, f: &Figures) {
    if f.h2load.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "\n## h2load: VerifyBearer per token kind, and OpenBao's token lookup\n"
    );
    let _ = writeln!(
        w,
        "The caller's bearer is the service secret; the request's `token` is the kind shown. The no-op answers each \
         kind with the principal Tessera answers (same response bytes: see Response sizes). OpenBao: \
         `POST /v1/auth/token/lookup` with a token made once by `auth/token/create`, over HTTP/1.1 (`--h1`), \
         connections × streams connections with one request in flight each; its ratio is Tessera's (user token) \
         over OpenBao's.\n"
    );
    let _ = writeln!(
        w,
        "| level | token | system | calls/s | × no-op | server CPU µs/call | server CPU % | h2load CPU % | other CPU % | saturated | h2load succeeded / failed / 2xx | server-counted OK / not OK |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for ((level, kind, system), runs) in &f.h2load {
        let rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
        let versus = match system {
            System::BaoRaft | System::BaoInmem => f
                .h2load
                .get(&(*level, *kind, System::Sqlite))
                .map(|t| (t, true)),
            _ => f
                .h2load
                .get(&(*level, *kind, System::Noop))
                .map(|b| (b, false)),
        };
        let ratio = match versus {
            _ if *system == System::Noop => "1".to_owned(),
            None => "–".to_owned(),
            Some((other, inverse)) => {
                let r: Vec<f64> = runs
                    .iter()
                    .zip(other)
                    .map(|(x, y)| {
                        if inverse {
                            y.rate / x.rate
                        } else {
                            x.rate / y.rate
                        }
                    })
                    .collect();
                let text = fmt_spread(&r, 2);
                if inverse {
                    format!("Tessera {text} × this")
                } else {
                    text
                }
            }
        };
        let cpu: Vec<f64> = runs.iter().filter_map(|r| r.server_cpu_us).collect();
        let succeeded: u64 = runs.iter().map(|r| r.succeeded).sum();
        let failed: u64 = runs.iter().map(|r| r.failed).sum();
        let ok_2xx: u64 = runs.iter().map(|r| r.status_2xx).sum();
        let server = match (
            runs.iter().map(|r| r.server_ok).sum::<Option<u64>>(),
            runs.iter().map(|r| r.server_not_ok).sum::<Option<u64>>(),
        ) {
            (Some(ok), Some(bad)) => format!("{ok} / {bad}"),
            _ => "– (no counters)".to_owned(),
        };
        let _ = writeln!(
            w,
            "| {}×{} | {} | {} | {} | {ratio} | {} | {} | {} | {succeeded} / {failed} / {ok_2xx} | {server} |",
            level.0,
            level.1,
            kind_name(*kind),
            system_name(*system),
            fmt_spread(&rates, 0),
            fmt_spread(&cpu, 1),
            share_columns(runs.iter().map(|r| r.shares)),
            saturation::summary(&runs.iter().map(|r| r.saturated).collect::<Vec<_>>()),
        );
    }
    let _ = writeln!(
        w,
        "\nh2load counts any HTTP 200 as success, gRPC errors included: the last column is Tessera's own \
         `tessera_grpc_requests_total{{method=\"VerifyBearer\"}}` delta over each run (OK / any other code)."
    );
}
