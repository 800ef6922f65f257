//! The flags of `tessera serve`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{DatabaseArgs, parse_lifetime};
use crate::audit_log::{self, AuditLogTarget};
use crate::domain::{DEFAULT_MAX_TTL_SECS, DEFAULT_TTL_SECS};

/// Settings of `tessera serve`.
#[derive(Clone, Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Ticket lifetime in seconds when the caller asks for none.
    #[arg(long, env = "TESSERA_TICKET_TTL", default_value_t = DEFAULT_TTL_SECS)]
    pub ticket_ttl: u64,
    /// Longest ticket lifetime a caller may ask for, in seconds.
    #[arg(long, env = "TESSERA_TICKET_MAX_TTL", default_value_t = DEFAULT_MAX_TTL_SECS)]
    pub ticket_max_ttl: u64,
    /// Lifetime of a user access token when its creator asks for none
    /// (and of those made by ConsumeInstallToken), e.g. `90d` or plain seconds.
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL", default_value = "90d", value_parser = parse_lifetime)]
    pub access_token_ttl: Duration,
    /// Longest lifetime a user may give its access token.
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_MAX_TTL", default_value = "366d", value_parser = parse_lifetime)]
    pub access_token_max_ttl: Duration,
    /// How long a workspace runtime still accepts the inbound secret a
    /// confirmed rotation replaced; platforms re-read the secret within it.
    #[arg(long, env = "TESSERA_INBOUND_GRACE", default_value = "10m", value_parser = parse_lifetime)]
    pub inbound_grace: Duration,
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
    /// Calls a minute each peer may make to GetInstallTokenStatus, which
    /// needs no credentials. (ConsumeInstallToken is limited by its
    /// refusals, through the failure budget.)
    #[arg(long, env = "TESSERA_ANONYMOUS_RATE_PER_MINUTE", default_value_t = NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN))]
    pub anonymous_rate_per_minute: NonZeroU32,
    /// Largest request message accepted, in bytes.
    #[arg(long, env = "TESSERA_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Longest a call may run unless the client's `grpc-timeout` is shorter, in ms.
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Concurrent calls (HTTP/2 streams) allowed per connection.
    #[arg(long, env = "TESSERA_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// How long a TLS handshake may take before the connection is dropped, in ms.
    #[arg(
        long,
        env = "TESSERA_TLS_HANDSHAKE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub tls_handshake_timeout_ms: u64,
    /// How long a new connection has to deliver the HTTP/2 client preface
    /// (its TLS handshake included) before it is closed, in ms (0: no limit).
    #[arg(long, env = "TESSERA_PREFACE_TIMEOUT_MS", default_value_t = 10_000)]
    pub preface_timeout_ms: u64,
    /// Connections held at once; one more is accepted and closed at once.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = NonZeroU32::new(10_000).unwrap_or(NonZeroU32::MIN))]
    pub max_connections: NonZeroU32,
    /// Connections one peer address may hold at once (IPv4-mapped IPv6
    /// counts as IPv4); one more is accepted and closed at once.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS_PER_PEER", default_value_t = NonZeroU32::new(1_000).unwrap_or(NonZeroU32::MIN))]
    pub max_connections_per_peer: NonZeroU32,
    /// How often an idle HTTP/2 connection is pinged, in ms (0: never).
    #[arg(
        long,
        env = "TESSERA_HTTP2_KEEPALIVE_INTERVAL_MS",
        default_value_t = 30_000
    )]
    pub http2_keepalive_interval_ms: u64,
    /// How long a ping may go unanswered before the connection is closed, in ms.
    #[arg(
        long,
        env = "TESSERA_HTTP2_KEEPALIVE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub http2_keepalive_timeout_ms: u64,
    /// Age after which a connection is asked to go away (its calls may
    /// finish within the request timeout), in ms (0: no limit).
    #[arg(
        long,
        env = "TESSERA_MAX_CONNECTION_AGE_MS",
        default_value_t = 3_600_000
    )]
    pub max_connection_age_ms: u64,
    /// Health `Watch` streams one peer address may hold open at once.
    #[arg(long, env = "TESSERA_MAX_WATCH_STREAMS_PER_PEER", default_value_t = NonZeroU32::new(16).unwrap_or(NonZeroU32::MIN))]
    pub max_watch_streams_per_peer: NonZeroU32,
    /// Pooled database connections per process (default 8 on SQLite, 16 on
    /// PostgreSQL); replicas × this must stay below PostgreSQL's `max_connections`.
    #[arg(long, env = "TESSERA_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Address of the Prometheus endpoint (`GET /metrics`); off when unset.
    #[arg(long, env = "TESSERA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Failed authentications a minute allowed per peer address and per
    /// presented credential before they are refused for a while.
    #[arg(long, env = "TESSERA_AUTH_FAILURES_PER_MINUTE", default_value_t = NonZeroU32::new(120).unwrap_or(NonZeroU32::MIN))]
    pub auth_failures_per_minute: NonZeroU32,
    /// PEM certificate chain: serve TLS (with `TESSERA_TLS_KEY`).
    #[arg(long, env = "TESSERA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `TESSERA_TLS_CERT`.
    #[arg(long, env = "TESSERA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): require client certificates signed by it (mutual TLS).
    #[arg(long, env = "TESSERA_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Service secrets from this file instead of `TESSERA_SERVICE_TOKEN_*`
    /// (lines `TESSERA_SERVICE_TOKEN_<NAME>=<secret>`); read again on SIGHUP.
    #[arg(long, env = "TESSERA_SERVICE_TOKENS_FILE")]
    pub service_tokens_file: Option<PathBuf>,
    /// How long audit entries are kept, e.g. `90d` or `2160h` (a plain
    /// number is seconds); older ones are pruned by the reaper.
    #[arg(long, env = "TESSERA_AUDIT_RETENTION", default_value = "90d", value_parser = parse_lifetime)]
    pub audit_retention: Duration,
    /// Also write every audit entry as one JSON line to `stdout` or
    /// appended to this file (created with mode 0600).
    #[arg(long, env = "TESSERA_AUDIT_LOG", value_parser = audit_log::parse_target)]
    pub audit_log: Option<AuditLogTarget>,
    /// How long the records of revoked or expired credentials are kept
    /// after they ended (same forms as the audit retention); older ones
    /// are pruned by the reaper.
    #[arg(long, env = "TESSERA_CREDENTIAL_RETENTION", default_value = "90d", value_parser = parse_lifetime)]
    pub credential_retention: Duration,
    /// How long in-flight calls may run after SIGTERM, in ms.
    #[arg(long, env = "TESSERA_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
    /// How often the last-used times of accepted credentials are written,
    /// in ms. Hidden: for tests, which need it short.
    #[arg(
        long,
        env = "TESSERA_LAST_USED_FLUSH_MS",
        default_value_t = 5_000,
        hide = true
    )]
    pub last_used_flush_ms: u64,
    /// For tests of replicas whose clocks disagree: this process reads its
    /// clock this many ms off (negative: behind). Hidden: not for operators.
    #[arg(
        long,
        env = "TESSERA_CLOCK_SKEW_MS",
        default_value_t = 0,
        hide = true,
        allow_hyphen_values = true
    )]
    pub clock_skew_ms: i64,
}
