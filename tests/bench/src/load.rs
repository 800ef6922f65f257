//! The closed-loop load generator: `connections × streams` tasks, each
//! issuing one operation after the other for a warm-up and a measured
//! window, with latencies in HDR histograms.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tessera_client::Client;
use tessera_client::pb::{
    ConsumeTicketRequest, MintTicketRequest, RegisterWorkspaceRequest, VerifyBearerRequest,
};

/// One connection of a cell and what its streams do on it.
pub enum Conn {
    /// A gRPC connection (one HTTP/2 connection per [`Client`]).
    Grpc(Box<Client>, Work),
    /// A multiplexed Redis connection: SET EX NX + GETDEL pairs.
    Redis(redis::aio::MultiplexedConnection),
    /// A pool shared by all streams: INSERT + DELETE … RETURNING pairs.
    Pg(DatabaseConnection),
    /// An HTTP/1.1 connection to OpenBao: wrap + unwrap pairs (one stream).
    Bao(Box<crate::openbao::BaoConn>),
}

/// The gRPC operation of a cell.
#[derive(Clone, Debug)]
pub enum Work {
    /// VerifyBearer of this token.
    Verify(String),
    /// MintTicket then ConsumeTicket of that ticket.
    Pair,
    /// RegisterWorkspace of this workspace (the client's bearer is its
    /// registration token).
    Register(String),
}

/// What one measured window produced.
pub struct Outcome {
    /// Successful operations completed inside the window.
    pub ok: u64,
    /// Failed operations completed inside the window.
    pub errors: u64,
    /// The first error seen (warm-up included), for the report.
    pub first_error: Option<String>,
    /// Operation latency, µs.
    pub latency: Histogram<u64>,
    /// ConsumeTicket (or GETDEL, DELETE) latency within pairs, µs.
    pub consume: Histogram<u64>,
    /// Length of the window, s.
    pub seconds: f64,
    /// Server CPU seconds (utime + stime) spent in the window.
    pub server_cpu: Option<f64>,
    /// The generator's (this process's) CPU seconds in the window.
    pub gen_cpu: Option<f64>,
    /// Busy CPU seconds of the whole machine in the window.
    pub machine_cpu: Option<f64>,
}

impl Outcome {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

/// `streams` closed loops of ConsumeTicket for a ticket holding a NUL on
/// `client`, for `length`: the refusals answered per second. Any answer
/// counts: the point is the write each refusal makes.
pub fn poison(client: Client, streams: usize, length: Duration) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let end = Instant::now() + length;
        let loops: Vec<_> = (0..streams)
            .map(|_| {
                let mut client = client.clone();
                tokio::spawn(async move {
                    let mut answered = 0_u64;
                    while Instant::now() < end {
                        let request = ConsumeTicketRequest {
                            ticket: "\0".to_owned(),
                            purpose: String::new(),
                        };
                        let _ = client.consume_ticket(request).await;
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        let mut answered = 0;
        for task in loops {
            answered += task.await.unwrap_or(0);
        }
        answered as f64 / length.as_secs_f64()
    })
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Runs `streams` concurrent closed loops on each connection: `warmup`
/// unmeasured, then `window` measured. `server_pid` gets its CPU time read
/// at both ends of the window.
pub async fn run(
    conns: Vec<Conn>,
    streams: usize,
    warmup: Duration,
    window: Duration,
    server_pid: Option<u32>,
) -> Outcome {
    let begin = Instant::now() + Duration::from_millis(20);
    let start = begin + warmup;
    let end = start + window;
    // Both processes' CPU over the window: the server's per operation, and
    // the generator's own share, to tell which of the two was saturated.
    let cpu = tokio::spawn(async move {
        let me = std::process::id();
        let read = move || {
            (
                server_pid.and_then(crate::procs::cpu_seconds),
                crate::procs::cpu_seconds(me),
                crate::procs::machine_busy_seconds(),
            )
        };
        tokio::time::sleep_until(start.into()).await;
        let before = read();
        tokio::time::sleep_until(end.into()).await;
        let after = read();
        let delta = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        (
            delta(after.0, before.0),
            delta(after.1, before.1),
            delta(after.2, before.2),
        )
    });
    let mut tasks = Vec::new();
    for (c, conn) in conns.into_iter().enumerate() {
        let conn = std::sync::Arc::new(conn);
        for s in 0..streams {
            let conn = conn.clone();
            let id = (c * streams + s) as u64;
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(begin.into()).await;
                stream(&conn, id, start, end).await
            }));
        }
    }
    let mut outcome = Outcome {
        ok: 0,
        errors: 0,
        first_error: None,
        latency: histogram(),
        consume: histogram(),
        seconds: window.as_secs_f64(),
        server_cpu: None,
        gen_cpu: None,
        machine_cpu: None,
    };
    for task in tasks {
        match task.await {
            Ok(part) => {
                outcome.ok += part.ok;
                outcome.errors += part.errors;
                if outcome.first_error.is_none() {
                    outcome.first_error = part.first_error;
                }
                let _ = outcome.latency.add(&part.latency);
                let _ = outcome.consume.add(&part.consume);
            }
            Err(e) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (outcome.server_cpu, outcome.gen_cpu, outcome.machine_cpu) =
        cpu.await.unwrap_or((None, None, None));
    outcome
}

/// One closed loop: counts operations that complete inside the window.
async fn stream(conn: &Conn, id: u64, start: Instant, end: Instant) -> Outcome {
    let mut part = Outcome {
        ok: 0,
        errors: 0,
        first_error: None,
        latency: histogram(),
        consume: histogram(),
        seconds: 0.0,
        server_cpu: None,
        gen_cpu: None,
        machine_cpu: None,
    };
    let mut n: u64 = 0;
    loop {
        let began = Instant::now();
        if began >= end {
            break;
        }
        n += 1;
        let result = once(conn, id, n).await;
        let done = Instant::now();
        let measured = done >= start && done <= end;
        match result {
            Ok(consume) => {
                if measured {
                    part.ok += 1;
                    let _ = part.latency.record(micros(done - began));
                    if let Some(consume) = consume {
                        let _ = part.consume.record(micros(consume));
                    }
                }
            }
            Err(e) => {
                if measured {
                    part.errors += 1;
                }
                part.first_error.get_or_insert(e);
                // Do not spin on a broken target.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    part
}

/// One operation; for pairs, also the latency of its second half.
async fn once(conn: &Conn, id: u64, n: u64) -> Result<Option<Duration>, String> {
    match conn {
        Conn::Grpc(client, work) => grpc((**client).clone(), work, id).await,
        Conn::Bao(bao) => bao.pair().await.map(Some),
        Conn::Redis(redis) => {
            let mut redis = redis.clone();
            let key = format!("tessera-bench:{id}:{n}");
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg("user-0000|github|bench|1767225600123")
                .arg("EX")
                .arg(30)
                .arg("NX")
                .query_async(&mut redis)
                .await
                .map_err(|e| e.to_string())?;
            if set.is_none() {
                return Err(format!("SET NX refused {key}"));
            }
            let second = Instant::now();
            let got: Option<String> = redis::cmd("GETDEL")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .map_err(|e| e.to_string())?;
            got.map(|_| Some(second.elapsed()))
                .ok_or_else(|| format!("GETDEL found no {key}"))
        }
        Conn::Pg(db) => {
            let hash = format!("{:032x}{id:016x}{n:016x}", std::process::id());
            let now = crate::now_ms();
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO alt_tickets (hash, user_id, provider, purpose, minted_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                [
                    hash.clone().into(),
                    "user-0000".into(),
                    "github".into(),
                    "bench".into(),
                    now.into(),
                    (now + 30_000).into(),
                ],
            ))
            .await
            .map_err(|e| e.to_string())?;
            let second = Instant::now();
            let row = db
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "DELETE FROM alt_tickets WHERE hash = $1 \
                     RETURNING user_id, provider, purpose, minted_at, expires_at",
                    [hash.into()],
                ))
                .await
                .map_err(|e| e.to_string())?;
            row.map(|_| Some(second.elapsed()))
                .ok_or_else(|| "DELETE … RETURNING found no row".to_owned())
        }
    }
}

async fn grpc(mut client: Client, work: &Work, id: u64) -> Result<Option<Duration>, String> {
    match work {
        Work::Verify(token) => {
            let response = client
                .verify_bearer(VerifyBearerRequest {
                    token: token.clone(),
                })
                .await
                .map_err(|s| format!("VerifyBearer: {:?} {}", s.code(), s.message()))?;
            response
                .into_inner()
                .principal
                .map(|_| None)
                .ok_or_else(|| "VerifyBearer without a principal".to_owned())
        }
        Work::Pair => {
            let user_id = format!("user-{:04}", id % 10_000);
            let minted = client
                .mint_ticket(MintTicketRequest {
                    user_id: user_id.clone(),
                    provider: "github".to_owned(),
                    purpose: "bench".to_owned(),
                    ttl_seconds: 0,
                })
                .await
                .map_err(|s| format!("MintTicket: {:?} {}", s.code(), s.message()))?
                .into_inner();
            let second = Instant::now();
            let identity = client
                .consume_ticket(ConsumeTicketRequest {
                    ticket: minted.ticket,
                    purpose: "bench".to_owned(),
                })
                .await
                .map_err(|s| format!("ConsumeTicket: {:?} {}", s.code(), s.message()))?
                .into_inner()
                .identity
                .ok_or("ConsumeTicket without an identity")?;
            let elapsed = second.elapsed();
            // The no-op answers a fixed identity; Tessera must answer ours.
            if identity.provider != "github" {
                return Err(format!("ConsumeTicket answered {identity:?}"));
            }
            Ok(Some(elapsed))
        }
        Work::Register(workspace_id) => {
            client
                .register_workspace(RegisterWorkspaceRequest {
                    workspace_id: workspace_id.clone(),
                    reissue_auth_token: false,
                    ..Default::default()
                })
                .await
                .map_err(|s| format!("RegisterWorkspace: {:?} {}", s.code(), s.message()))?;
            Ok(None)
        }
    }
}
