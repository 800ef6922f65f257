//! The checked settings of `tessera serve`, made from its flags.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use super::{ServeArgs, TlsFiles, TlsSettings, positive_millis};
use crate::audit_log::AuditLogTarget;
use crate::auth::verify::{self, ServiceSecrets};
use crate::domain::{AccessTokenPolicy, BannerSink, Policies, TicketPolicy, WorkspacePolicy};
use crate::store::DatabaseUrl;
use crate::store::sealing::Keyring;

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
