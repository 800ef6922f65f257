//! Command line and environment: every flag is also an environment variable.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::service_bearer::ServiceSecrets;
use crate::tickets::TicketPolicy;

/// Tessera: a gRPC credential-issuing service.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Sub-commands of `tessera`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC service (the default).
    Serve(ServeArgs),
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
}

/// `tessera install-token …`.
#[derive(Clone, Copy, Debug, Subcommand)]
pub enum InstallTokenAction {
    /// Print the state and times of the install token.
    Status,
    /// Mint a fresh install token (replacing a pending one) and print its banner.
    Regenerate,
}

/// How logs are written (to standard error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Where the data lives.
#[derive(Clone, Debug, Args)]
pub struct DatabaseArgs {
    /// `sqlite:<file>` (created on first run) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:tessera.db")]
    pub database_url: String,
}

/// Settings of `tessera serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Ticket lifetime in seconds when the caller asks for none.
    #[arg(long, env = "TESSERA_TICKET_TTL", default_value_t = 30)]
    pub ticket_ttl: u64,
    /// Longest ticket lifetime a caller may ask for, in seconds.
    #[arg(long, env = "TESSERA_TICKET_MAX_TTL", default_value_t = 300)]
    pub ticket_max_ttl: u64,
    /// How often the database is checked for the health service, in ms.
    #[arg(long, env = "TESSERA_DB_CHECK_INTERVAL_MS", default_value_t = 2_000)]
    pub db_check_interval_ms: u64,
    /// How often expired tickets and dead internal credentials are deleted, in ms.
    #[arg(long, env = "TESSERA_REAPER_INTERVAL_MS", default_value_t = 10_000)]
    pub reaper_interval_ms: u64,
    /// How often this process renews its internal credential, in ms. Another
    /// replica refuses it after three missed heartbeats.
    #[arg(long, env = "TESSERA_HEARTBEAT_INTERVAL_MS", default_value_t = 5_000)]
    pub heartbeat_interval_ms: u64,
    /// Calls a minute each peer may make to the RPCs that need no
    /// credentials (GetInstallTokenStatus, ConsumeInstallToken).
    #[arg(long, env = "TESSERA_ANONYMOUS_RATE_PER_MINUTE", default_value_t = NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN))]
    pub anonymous_rate_per_minute: NonZeroU32,
    /// How long in-flight calls may run after SIGTERM, in ms.
    #[arg(long, env = "TESSERA_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
}

impl ServeArgs {
    /// The settings of `tessera` run without arguments (environment only).
    pub fn from_env() -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Only::try_parse_from(["tessera"]).map(|only| only.serve)
    }

    /// Validates and converts to [`Settings`], reading service secrets from
    /// the environment.
    pub fn settings(&self) -> Result<Settings, String> {
        if self.ticket_ttl == 0 || self.ticket_ttl > self.ticket_max_ttl {
            return Err("TESSERA_TICKET_TTL must be between 1 and TESSERA_TICKET_MAX_TTL".into());
        }
        for (name, value) in [
            ("TESSERA_DB_CHECK_INTERVAL_MS", self.db_check_interval_ms),
            ("TESSERA_REAPER_INTERVAL_MS", self.reaper_interval_ms),
            ("TESSERA_HEARTBEAT_INTERVAL_MS", self.heartbeat_interval_ms),
        ] {
            if value == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        Ok(Settings {
            database_url: self.database.database_url.clone(),
            tickets: TicketPolicy {
                default_ttl: Duration::from_secs(self.ticket_ttl),
                max_ttl: Duration::from_secs(self.ticket_max_ttl),
            },
            db_check_interval: Duration::from_millis(self.db_check_interval_ms),
            reaper_interval: Duration::from_millis(self.reaper_interval_ms),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            drain_timeout: Duration::from_millis(self.drain_timeout_ms),
            anonymous_rate_per_minute: self.anonymous_rate_per_minute,
            service_secrets: ServiceSecrets::from_env(),
        })
    }
}

/// Everything [`crate::serve`] needs besides the listener.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Database URL.
    pub database_url: String,
    /// Ticket lifetimes.
    pub tickets: TicketPolicy,
    /// Health check period.
    pub db_check_interval: Duration,
    /// Reaper period.
    pub reaper_interval: Duration,
    /// Internal credential heartbeat period.
    pub heartbeat_interval: Duration,
    /// Grace period for in-flight calls at shutdown.
    pub drain_timeout: Duration,
    /// Per-peer budget of the RPCs anyone may call.
    pub anonymous_rate_per_minute: NonZeroU32,
    /// Configured service secrets.
    pub service_secrets: ServiceSecrets,
}
