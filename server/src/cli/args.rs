//! The command line of `tessera`: the server, local operator commands and
//! the health probe.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{DatabaseArgs, LogFormat, ServeArgs};

/// Tessera: a gRPC credential-issuing service.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub(crate) struct Cli {
    /// Log format.
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub(crate) log_format: LogFormat,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Sub-commands of `tessera`.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the gRPC service (the default).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Inspect or replace the first-admin install token.
    InstallToken {
        /// What to do with it.
        #[command(subcommand)]
        action: InstallTokenAction,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print a fresh 256-bit secret for `TESSERA_SERVICE_TOKEN_<NAME>`.
    GenSecret,
    /// Probe a running server's gRPC health (`grpc.health.v1`): exit 0 only
    /// when it reports `SERVING`.
    Health(HealthArgs),
}

/// Settings of `tessera health`.
///
/// Exit codes (those of `grpc_health_probe`): 0 `SERVING`, 1 bad arguments,
/// 2 cannot connect or timed out, 3 the Check call failed (e.g. an unknown
/// `--service`), 4 any status but `SERVING`.
#[derive(Clone, Debug, Args)]
pub(crate) struct HealthArgs {
    /// Server to probe: `host:port` or `http://host:port`. Defaults to
    /// `TESSERA_LISTEN` (so a container or unit probes its own server), with
    /// an unspecified address (`0.0.0.0`, `[::]`) probed on loopback, and to
    /// `127.0.0.1:50051` without it.
    #[arg(long, env = "TESSERA_HEALTH_ADDR")]
    pub(crate) addr: Option<String>,
    /// Service to check; empty for the whole server.
    #[arg(long, env = "TESSERA_HEALTH_SERVICE", default_value = "")]
    pub(crate) service: String,
    /// Give up after this many milliseconds (connecting and the call).
    #[arg(long, env = "TESSERA_HEALTH_TIMEOUT_MS", default_value_t = 2_000)]
    pub(crate) timeout_ms: u64,
    /// PEM CA to verify a TLS server with; probes over TLS when set.
    #[arg(long, env = "TESSERA_HEALTH_TLS_CA")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (mutual TLS).
    #[arg(long, env = "TESSERA_HEALTH_TLS_CERT", requires_all = ["tls_ca", "tls_key"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "TESSERA_HEALTH_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Name expected in the server certificate, if not the host of `--addr`.
    #[arg(long, env = "TESSERA_HEALTH_TLS_DOMAIN", requires = "tls_ca")]
    pub(crate) tls_domain: Option<String>,
}

/// `tessera install-token …`.
#[derive(Clone, Copy, Debug, Subcommand)]
pub(crate) enum InstallTokenAction {
    /// Print the state and times of the install token.
    Status,
    /// Mint a fresh install token (replacing a pending one) and print its banner.
    Regenerate,
}
