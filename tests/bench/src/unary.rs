//! The h2load cells of one repetition: VerifyBearer with each kind of token
//! against Tessera/SQLite and the no-op (both answering the same bytes),
//! and OpenBao's `auth/token/lookup` over HTTP/1.1.

use std::path::PathBuf;

use crate::h2load::{self, H2Result, Request};
use crate::report::Figures;
use crate::{Level, SERVICE_SECRET, Scenario, Setup, System};

/// The token kinds, each sent as the request's `token` (the caller's
/// bearer is always the service secret).
pub const KINDS: [Scenario; 3] = [
    Scenario::VerifyService,
    Scenario::VerifyUser,
    Scenario::VerifyWorkspace,
];

/// OpenBao's lookup cells make this fraction of `--h2load-requests`.
const BAO_SHARE: u64 = 5;

/// The h2load levels: 10×10 and 50×20 (quick: 10×10), those of `--level`
/// only when given.
fn levels(setup: &Setup) -> Vec<Level> {
    let mut list = if setup.args.quick {
        vec![(10, 10)]
    } else {
        vec![(10, 10), (50, 20)]
    };
    if !setup.args.only_levels.is_empty() {
        list.retain(|l| setup.args.only_levels.contains(l));
    }
    list
}

/// Request bodies written once: a gRPC frame per token kind, a lookup
/// body per OpenBao.
pub struct Unary {
    h2load: PathBuf,
    frames: Vec<(Scenario, PathBuf)>,
    lookups: Vec<(System, PathBuf)>,
}

impl Unary {
    /// `None` (with a note) without h2load.
    pub fn prepare(setup: &Setup, figures: &mut Figures) -> Result<Option<Unary>, String> {
        let Some(h2load) = h2load::find() else {
            figures.notes.push(
                "h2load not installed: the VerifyBearer and OpenBao lookup cells are skipped"
                    .to_owned(),
            );
            return Ok(None);
        };
        let dir = setup.dir.path();
        let mut frames = Vec::new();
        for kind in KINDS.into_iter().filter(|k| setup.args.wants(*k)) {
            let path = dir.join(format!("verify-{kind:?}.grpc"));
            std::fs::write(&path, h2load::grpc_frame(token(setup, kind)))
                .map_err(|e| e.to_string())?;
            frames.push((kind, path));
        }
        let mut lookups = Vec::new();
        if setup.args.wants(Scenario::VerifyUser) {
            for system in [System::BaoRaft, System::BaoInmem] {
                if let Some(bao) = setup.bao_of(system) {
                    lookups.push((system, bao.lookup_body(dir)?));
                }
            }
        }
        Ok(Some(Unary {
            h2load,
            frames,
            lookups,
        }))
    }

    /// Every h2load cell once, interleaved: per level, per token kind, the
    /// no-op then Tessera; then OpenBao's lookups at 10×10.
    pub async fn rep(
        &self,
        setup: &Setup,
        rep: usize,
        figures: &mut Figures,
    ) -> Result<(), String> {
        let requests = setup.args.h2load_requests;
        for level in levels(setup) {
            for (kind, frame) in &self.frames {
                for (system, proc) in [
                    (System::Noop, &setup.noop),
                    (System::Sqlite, &setup.sqlite.proc),
                ] {
                    let request = Request {
                        url: format!(
                            "{}/tessera.v1.CredentialService/VerifyBearer",
                            proc.endpoint()
                        ),
                        headers: h2load::grpc_headers(SERVICE_SECRET),
                        body: frame,
                        h1: false,
                        server_pid: proc.pid(),
                        counted: (system == System::Sqlite).then_some(proc),
                    };
                    let result = h2load::run(&self.h2load, &request, level, requests).await?;
                    log(rep, level, system, *kind, &result);
                    if result.server_ok == Some(0) || result.succeeded == 0 {
                        return Err(format!("h2load: no OK VerifyBearer: {result:?}"));
                    }
                    push(figures, level, *kind, system, result);
                }
            }
            if level.0 * level.1 > crate::BAO_MAX_IN_FLIGHT {
                continue;
            }
            for (system, body) in &self.lookups {
                let Some(bao) = setup.bao_of(*system) else {
                    continue;
                };
                let request = Request {
                    url: format!("http://{}/v1/auth/token/lookup", bao.addr),
                    headers: vec![format!("X-Vault-Token: {}", bao.root)],
                    body,
                    h1: true,
                    server_pid: bao.pid(),
                    counted: None,
                };
                // OpenBao answers several times slower: fewer calls keep the
                // cell about as long as Tessera's.
                let calls = (requests / BAO_SHARE).max(1);
                let result = h2load::run(&self.h2load, &request, level, calls).await?;
                log(rep, level, *system, Scenario::VerifyUser, &result);
                if result.status_2xx == 0 {
                    return Err(format!("h2load: no 2xx from OpenBao lookup: {result:?}"));
                }
                push(figures, level, Scenario::VerifyUser, *system, result);
            }
        }
        Ok(())
    }
}

/// The request token of a VerifyBearer cell.
fn token(setup: &Setup, kind: Scenario) -> &str {
    match kind {
        Scenario::VerifyUser => &setup.sqlite.admin_token,
        Scenario::VerifyWorkspace => &setup.sqlite.workspace_token,
        _ => SERVICE_SECRET,
    }
}

fn log(rep: usize, level: Level, system: System, kind: Scenario, r: &H2Result) {
    eprintln!(
        "rep {rep} h2load {}x{} {system:?} {kind:?}: {:.0}/s server {:.1} µs/call, {:.0}% + h2load {:.0}% + other {:.0}% ({}) ok {:?}/{:?} 2xx {}",
        level.0,
        level.1,
        r.rate,
        r.server_cpu_us.unwrap_or(f64::NAN),
        r.shares.server.unwrap_or(f64::NAN) * 100.0,
        r.shares.generator.unwrap_or(f64::NAN) * 100.0,
        r.shares.other().unwrap_or(f64::NAN) * 100.0,
        r.saturated.word(),
        r.server_ok,
        r.server_not_ok,
        r.status_2xx,
    );
}

fn push(figures: &mut Figures, level: Level, kind: Scenario, system: System, r: H2Result) {
    figures
        .h2load
        .entry((level, kind, system))
        .or_default()
        .push(r);
}
