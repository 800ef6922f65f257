//! A `tessera` process that is listening and `SERVING`, with clients and
//! health probes attached.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tessera_client::tonic::transport::Channel;
use tessera_client::{Client, ClientTls, Secret};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::{ServerOptions, ServerProcess, TestDatabase};

/// How long a server may take to listen and report `SERVING`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a health probe of a process that may not answer yet may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A running `tessera` process that has reported `SERVING`. Killed when
/// dropped.
pub struct TestServer {
    process: ServerProcess,
    /// Where it listens.
    pub addr: SocketAddr,
    tls: Option<ClientTls>,
}

impl TestServer {
    /// Starts `tessera` on `database` and waits until it is `SERVING`.
    pub async fn start(database: &TestDatabase, options: ServerOptions) -> TestServer {
        Self::start_with(options.database_url(database.url())).await
    }

    /// Starts `tessera` on `database` with [`ServerOptions::scheduler`] and
    /// the extra environment `env`.
    pub async fn start_scheduler(database: &TestDatabase, env: &[(&str, &str)]) -> TestServer {
        Self::start(database, ServerOptions::scheduler().envs(env)).await
    }

    /// Starts `tessera` exactly as `options` say (no `DATABASE_URL` unless
    /// they set one) and waits until it is `SERVING`.
    pub async fn start_with(options: ServerOptions) -> TestServer {
        Self::ready(ServerProcess::spawn(&options), START_TIMEOUT).await
    }

    /// Waits until `process` listens and is `SERVING`, each within `timeout`.
    pub async fn ready(mut process: ServerProcess, timeout: Duration) -> TestServer {
        let addr = process.wait_listening(timeout).await;
        let tls = process.tls.clone();
        let server = TestServer { process, addr, tls };
        server
            .wait_for_health(ServingStatus::Serving, timeout)
            .await;
        server
    }

    /// `http://<addr>`, or `https://` when the clients use TLS.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A client on its own connection, sending `bearer` (or nothing) on
    /// every call.
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

    /// A client on its own connection calling as the `SCHEDULER` service of
    /// [`ServerOptions::scheduler`].
    pub async fn scheduler(&self) -> Client {
        self.client(Some(&crate::scheduler_secret())).await
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

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Everything the process wrote to standard output so far.
    pub fn stdout(&self) -> String {
        self.process.stdout()
    }

    /// Everything the process wrote to standard error (its logs) so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Waits until a line of its logs satisfies `matches`; false when none
    /// has after `timeout` (logs reach the harness through a pipe, a little
    /// after what caused them).
    pub async fn wait_for_log(&self, matches: impl Fn(&str) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().lines().any(&matches) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Does `cause` (sends SIGHUP, say), then waits until `message` has been
    /// logged once more than before it; panics, showing the logs, when that
    /// takes over 10 s.
    pub async fn log_after(&mut self, message: &str, cause: impl FnOnce(&mut Self)) {
        let before = self.stderr().matches(message).count();
        cause(self);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.stderr().matches(message).count() <= before {
            assert!(
                Instant::now() < deadline,
                "no more {message:?} in the logs:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first `at_most` lines of its (JSON) logs at level ERROR, to show
    /// beside a failed assertion.
    pub fn error_lines(&self, at_most: usize) -> String {
        let logs = self.stderr();
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("\"ERROR\""))
            .take(at_most)
            .collect();
        lines.join("\n")
    }

    /// Sends SIGTERM.
    pub fn terminate(&mut self) {
        self.process.terminate();
    }

    /// Sends SIGINT.
    pub fn interrupt(&mut self) {
        self.process.interrupt();
    }

    /// Sends SIGHUP.
    pub fn hangup(&mut self) {
        self.process.hangup();
    }

    /// Sends SIGKILL.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Waits for the process to exit and its last output to be read; panics
    /// after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.process.wait_exit(timeout).await
    }

    /// Waits for the process to exit, as after SIGTERM or SIGINT, and
    /// asserts it exited with status 0.
    pub async fn wait_exit_zero(&mut self, timeout: Duration) {
        self.process.wait_exit_zero(timeout).await;
    }
}

/// The health of `service` at `addr` over plaintext, or `None` when nothing
/// answers within a second (not listening, not accepting, or not serving
/// gRPC yet): for probing a process that may not be ready.
pub async fn health_at(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let probe = async {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .ok()?
            .connect()
            .await
            .ok()?;
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        let response = HealthClient::new(channel).check(request).await.ok()?;
        ServingStatus::try_from(response.into_inner().status).ok()
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .ok()
        .flatten()
}
