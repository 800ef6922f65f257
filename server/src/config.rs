//! Command line and environment: every flag is also an environment variable.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use zeroize::Zeroizing;

use crate::audit_log::{self, AuditLogTarget};
use crate::auth::verify::{self, ServiceSecrets};
use crate::domain::{
    AccessTokenPolicy, BannerSink, DEFAULT_MAX_TTL_SECS, DEFAULT_TTL_SECS, Policies, TicketPolicy,
    WorkspacePolicy,
};
pub(crate) use crate::listen::{TlsFiles, TlsSettings};
use crate::store::DatabaseUrl;
use crate::store::sealing::Keyring;

/// How logs are written (to standard error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Where the data lives, and the keys of the secrets in it. `Debug` and
/// `--help` hide the URL (it may hold a password) and the keys;
/// [`DatabaseArgs::url`] parses the URL into a form that masks it.
#[derive(Clone, Args)]
pub(crate) struct DatabaseArgs {
    /// `sqlite:<file>` (created on first run) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite:tessera.db",
        hide_env_values = true
    )]
    database_url: String,
    /// Encryption key(s) of the inbound secrets at rest: 256-bit keys in
    /// standard base64 (`tessera gen-secret --key`), comma-separated during
    /// a rotation; the first encrypts, all decrypt. Prefer the environment
    /// or the file: a command line is visible to other users.
    #[arg(long, env = "TESSERA_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    /// A file holding what `TESSERA_ENCRYPTION_KEY` would.
    #[arg(long, env = "TESSERA_ENCRYPTION_KEY_FILE")]
    encryption_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs").finish_non_exhaustive()
    }
}

impl DatabaseArgs {
    /// The parsed URL; the error says what is wrong, the password masked.
    pub(crate) fn url(&self) -> Result<DatabaseUrl, String> {
        DatabaseUrl::parse(&self.database_url).map_err(|err| err.to_string())
    }

    /// The configured encryption keys (none: secrets stay plaintext). The
    /// error names the variable, never a key.
    pub(crate) fn keys(&self) -> Result<Keyring, String> {
        const KEY: &str = "TESSERA_ENCRYPTION_KEY";
        const FILE: &str = "TESSERA_ENCRYPTION_KEY_FILE";
        let (list, source) = match (&self.encryption_key, &self.encryption_key_file) {
            (None, None) => return Ok(Keyring::default()),
            (Some(_), Some(_)) => return Err(format!("{KEY} and {FILE} are both set; set one")),
            (Some(list), None) => (Zeroizing::new(list.clone()), KEY.to_owned()),
            (None, Some(path)) => {
                let read = std::fs::read_to_string(path)
                    .map_err(|err| format!("{FILE}: cannot read {}: {err}", path.display()))?;
                (Zeroizing::new(read), format!("{FILE} ({})", path.display()))
            }
        };
        Keyring::parse(&list).map_err(|err| format!("{source}: {err}"))
    }
}

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

/// The shortest inbound grace: runtimes re-register every half of it while
/// a rotation waits, so a shorter one would have them call in a loop.
const MIN_INBOUND_GRACE: Duration = Duration::from_secs(1);

/// The most `TESSERA_CLOCK_SKEW_MS` may skew a process's clock: a day.
const MAX_CLOCK_SKEW_MS: u64 = 86_400_000;

impl ServeArgs {
    /// The settings of `tessera` run without arguments (environment only).
    pub(crate) fn from_env() -> Result<Self, clap::Error> {
        Self::from_flags(&[])
    }

    /// The settings of `tessera serve <flags>`, the environment filling in
    /// what the flags leave out.
    pub(crate) fn from_flags(flags: &[&str]) -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Only::try_parse_from(std::iter::once(&"tessera").chain(flags)).map(|only| only.serve)
    }

    /// Validates and converts to [`Settings`], reading service secrets from
    /// the environment; install-token banners go to `banner`.
    pub(crate) fn settings(&self, banner: BannerSink) -> Result<Settings, String> {
        if self.ticket_ttl == 0 || self.ticket_ttl > self.ticket_max_ttl {
            return Err("TESSERA_TICKET_TTL must be between 1 and TESSERA_TICKET_MAX_TTL".into());
        }
        if self.access_token_ttl > self.access_token_max_ttl {
            return Err(
                "TESSERA_ACCESS_TOKEN_TTL must not exceed TESSERA_ACCESS_TOKEN_MAX_TTL".into(),
            );
        }
        if self.inbound_grace < MIN_INBOUND_GRACE {
            return Err("TESSERA_INBOUND_GRACE must be at least 1s".into());
        }
        if self.clock_skew_ms.unsigned_abs() > MAX_CLOCK_SKEW_MS {
            return Err("TESSERA_CLOCK_SKEW_MS (for tests) must be within a day".into());
        }
        for (name, value) in [
            ("TESSERA_DB_CHECK_INTERVAL_MS", self.db_check_interval_ms),
            ("TESSERA_REAPER_INTERVAL_MS", self.reaper_interval_ms),
            ("TESSERA_HEARTBEAT_INTERVAL_MS", self.heartbeat_interval_ms),
            ("TESSERA_LAST_USED_FLUSH_MS", self.last_used_flush_ms),
        ] {
            if value == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        Ok(Settings {
            tls: self.tls()?,
            database_url: self.database.url()?,
            keys: Arc::new(self.database.keys()?),
            policies: Policies {
                tickets: TicketPolicy {
                    default_ttl: Duration::from_secs(self.ticket_ttl),
                    max_ttl: Duration::from_secs(self.ticket_max_ttl),
                },
                access_tokens: AccessTokenPolicy {
                    default_ttl: self.access_token_ttl,
                    max_ttl: self.access_token_max_ttl,
                },
                workspaces: WorkspacePolicy {
                    inbound_grace: self.inbound_grace,
                },
            },
            db_check_interval: Duration::from_millis(self.db_check_interval_ms),
            reaper_interval: Duration::from_millis(self.reaper_interval_ms),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            last_used_flush_interval: Duration::from_millis(self.last_used_flush_ms),
            drain_timeout: Duration::from_millis(self.drain_timeout_ms),
            clock_skew_ms: self.clock_skew_ms,
            audit_retention: self.audit_retention,
            audit_log: self.audit_log.clone(),
            credential_retention: self.credential_retention,
            anonymous_rate_per_minute: self.anonymous_rate_per_minute,
            auth_failures_per_minute: self.auth_failures_per_minute,
            metrics_listen: self.metrics_listen,
            db_max_connections: self.db_max_connections,
            limits: Limits {
                max_message_bytes: self.max_message_bytes,
                request_timeout: Duration::from_millis(self.request_timeout_ms),
                max_concurrent_streams: self.max_concurrent_streams,
                tls_handshake_timeout: Duration::from_millis(self.tls_handshake_timeout_ms),
                preface_timeout: positive_millis(self.preface_timeout_ms),
                max_connections: self.max_connections,
                max_connections_per_peer: self.max_connections_per_peer,
                http2_keepalive_interval: positive_millis(self.http2_keepalive_interval_ms),
                http2_keepalive_timeout: Duration::from_millis(self.http2_keepalive_timeout_ms),
                max_connection_age: positive_millis(self.max_connection_age_ms),
                max_watch_streams_per_peer: self.max_watch_streams_per_peer,
            },
            service_secrets: verify::configured_secrets(self.service_tokens_file.as_deref())
                .map_err(|err| format!("TESSERA_SERVICE_TOKENS_FILE: {err}"))?,
            service_tokens_file: self.service_tokens_file.clone(),
            banner,
        })
    }
}

impl ServeArgs {
    /// Reads the TLS files now, so a bad path fails at startup.
    fn tls(&self) -> Result<Option<TlsSettings>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: self.tls_client_ca.clone(),
        };
        files.read().map(Some)
    }
}

/// Limits on what one call or connection may use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Largest request message, in bytes.
    pub max_message_bytes: usize,
    /// Server-side deadline of every call (a shorter `grpc-timeout` wins).
    pub request_timeout: Duration,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Longest TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Longest wait from accept to the HTTP/2 preface; `None`: no limit.
    pub preface_timeout: Option<Duration>,
    /// Connections held at once.
    pub max_connections: NonZeroU32,
    /// Connections held at once per peer address.
    pub max_connections_per_peer: NonZeroU32,
    /// HTTP/2 ping period of idle connections; `None`: no pings.
    pub http2_keepalive_interval: Option<Duration>,
    /// Longest wait for a ping's answer.
    pub http2_keepalive_timeout: Duration,
    /// Age after which a connection is asked to go away; `None`: no limit.
    pub max_connection_age: Option<Duration>,
    /// Health `Watch` streams per peer address.
    pub max_watch_streams_per_peer: NonZeroU32,
}

/// A positive duration: `90d`, `36h`, or plain seconds.
pub(crate) fn parse_lifetime(value: &str) -> Result<Duration, String> {
    let duration = match value.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(value.trim()).map_err(|err| err.to_string())?,
    };
    if duration.is_zero() {
        return Err("must be positive".into());
    }
    Ok(duration)
}

/// `ms` milliseconds, or `None` for 0 (the setting is off).
fn positive_millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// Everything [`crate::server::serve`] needs besides the listener.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Database URL; its `Debug` masks the password.
    pub database_url: DatabaseUrl,
    /// Encryption keys of the retrievable secrets; `Debug` shows key ids only.
    pub keys: Arc<Keyring>,
    /// Ticket and access-token lifetimes.
    pub policies: Policies,
    /// Health check period.
    pub db_check_interval: Duration,
    /// Reaper period.
    pub reaper_interval: Duration,
    /// Internal credential heartbeat period.
    pub heartbeat_interval: Duration,
    /// Period of the last-used flush.
    pub last_used_flush_interval: Duration,
    /// Grace period for in-flight calls at shutdown.
    pub drain_timeout: Duration,
    /// How far off this process reads its own clock (tests only).
    pub clock_skew_ms: i64,
    /// How long audit entries are kept.
    pub audit_retention: Duration,
    /// Where the copy of the audit log goes, if anywhere.
    pub audit_log: Option<AuditLogTarget>,
    /// How long ended credential records are kept.
    pub credential_retention: Duration,
    /// Per-peer budget of the RPCs anyone may call.
    pub anonymous_rate_per_minute: NonZeroU32,
    /// Per-peer and per-credential budget of failed authentications.
    pub auth_failures_per_minute: NonZeroU32,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Pool size override.
    pub db_max_connections: Option<u32>,
    /// Request size, time and concurrency limits.
    pub limits: Limits,
    /// TLS, when configured.
    pub tls: Option<TlsSettings>,
    /// Service secrets at startup.
    pub service_secrets: ServiceSecrets,
    /// The file they come from, read again on SIGHUP; `None`: the
    /// environment, which a running process cannot reread.
    pub service_tokens_file: Option<PathBuf>,
    /// Where install-token banners go.
    pub banner: BannerSink,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ServeArgs;
    use crate::domain::BannerSink;

    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn a_clock_skew_beyond_a_day_is_refused() {
        let skewed = |ms: &str| Only::parse_from(["tessera", "--clock-skew-ms", ms]).serve;
        assert!(skewed("-86400000").settings(BannerSink::stdout()).is_ok());
        let refused = skewed("86400001").settings(BannerSink::stdout());
        assert!(refused.is_err_and(|err| err.contains("TESSERA_CLOCK_SKEW_MS")));
    }

    #[test]
    fn an_inbound_grace_under_a_second_is_refused() {
        let grace = |value: &str| Only::parse_from(["tessera", "--inbound-grace", value]).serve;
        assert!(grace("1s").settings(BannerSink::stdout()).is_ok());
        for short in ["1ms", "999ms"] {
            let refused = grace(short).settings(BannerSink::stdout());
            assert!(refused.is_err_and(|err| err.contains("TESSERA_INBOUND_GRACE")));
        }
    }

    #[test]
    fn debug_of_the_settings_shows_no_database_password() {
        let url = "postgres://tessera:User-Pw-1@db/tessera?sslmode=require&password=Query-Pw-2";
        let args = Only::parse_from(["tessera", "--database-url", url]).serve;
        let settings = args.settings(BannerSink::stdout()).expect("settings");
        let shown = [
            format!("{args:?}"),
            format!("{settings:?}"),
            format!("{:?}", settings.database_url),
            settings.database_url.to_string(),
        ];
        for text in shown {
            assert!(
                !text.contains("User-Pw-1") && !text.contains("Query-Pw-2"),
                "{text}"
            );
        }
        assert_eq!(
            settings.database_url.to_string(),
            "postgres://tessera:***@db/tessera?sslmode=require&password=***"
        );
    }
}
