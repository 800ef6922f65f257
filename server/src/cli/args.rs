//! The command line of `tessera`: the server, local operator commands and
//! the health probe.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::remote::{
    AuditCommand, Connection, SecretsCommand, TicketCommand, TokenCommand, UserCommand,
    WorkspaceCommand,
};
use crate::config::{DatabaseArgs, LogFormat, ServeArgs, parse_lifetime};

/// Tessera: a gRPC credential-issuing service.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about,
    after_help = "Commands marked [remote] call a running server over gRPC (--addr or \
TESSERA_ADDR; the caller's credential from TESSERA_TOKEN or --token-file). Commands marked \
[local] open the database directly (DATABASE_URL) and work without a server."
)]
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
    #[command(display_order = 0)]
    Serve(Box<ServeArgs>),
    /// [remote] Access tokens and other credentials: create, list, revoke.
    #[command(display_order = 10)]
    Token {
        /// What to do.
        #[command(subcommand)]
        action: TokenCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// [remote] Invite users; redeem an invite; create the first administrator.
    #[command(display_order = 11)]
    User {
        /// What to do.
        #[command(subcommand)]
        action: UserCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// [remote] Provision, register, rotate, reissue and delete workspaces.
    #[command(display_order = 12)]
    Workspace {
        /// What to do.
        #[command(subcommand)]
        action: WorkspaceCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// [remote] Read the audit log.
    #[command(display_order = 13)]
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// [remote] Resolve a bearer token to its principal (VerifyBearer, as a
    /// service).
    #[command(display_order = 14)]
    Verify {
        /// The token; omitted or `-`: read from standard input (which keeps
        /// it out of `ps`).
        token: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// [remote] Mint or consume a single-use ticket.
    #[command(display_order = 15)]
    Ticket {
        /// What to do.
        #[command(subcommand)]
        action: TicketCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// [remote] Whether each service's previous secret is still presented.
    #[command(display_order = 16)]
    Secrets {
        /// What to do.
        #[command(subcommand)]
        action: SecretsCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Print shell completions for `tessera` (bash, zsh, fish, …).
    #[command(display_order = 40)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// [local] Apply database migrations and exit.
    #[command(display_order = 20)]
    Migrate(DatabaseArgs),
    /// [local] Encrypt every stored inbound secret under the current (first)
    /// encryption key, plaintext ones included, and report the counts per
    /// key (needs the database and every key in use).
    #[command(display_order = 21)]
    Rewrap(DatabaseArgs),
    /// [local] Inspect or replace the first-admin install token.
    #[command(display_order = 22)]
    InstallToken {
        /// What to do with it.
        #[command(subcommand)]
        action: InstallTokenAction,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// [local] Mint an access token for an existing user (the recovery path when
    /// no admin token works; needs the database, not a running server).
    #[command(display_order = 23)]
    AccessToken {
        /// What to do.
        #[command(subcommand)]
        action: AccessTokenAction,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// [local] List or revoke issued credentials (needs the database).
    #[command(display_order = 24)]
    Credentials {
        /// What to do.
        #[command(subcommand)]
        action: CredentialsAction,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// [local] Enable a user that RevokeSubject disabled (needs the database).
    #[command(display_order = 25)]
    Users {
        /// What to do.
        #[command(subcommand)]
        action: UsersAction,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print a fresh 256-bit secret for `TESSERA_SERVICE_TOKEN_<NAME>`, or
    /// with `--key` an encryption key for `TESSERA_ENCRYPTION_KEY`.
    #[command(display_order = 26)]
    GenSecret {
        /// Print a 256-bit encryption key in standard base64 instead.
        #[arg(long)]
        key: bool,
    },
    /// Probe a running server's gRPC health (`grpc.health.v1`): exit 0 only
    /// when it reports `SERVING`.
    #[command(display_order = 30)]
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

/// `tessera access-token …`.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum AccessTokenAction {
    /// Print a new access token (`tsr_usr_…`) of the user with this e-mail.
    Create {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
        /// A name for the token, shown in listings.
        #[arg(long, default_value = "")]
        name: String,
        /// Its lifetime, e.g. `30d` (default: `TESSERA_ACCESS_TOKEN_TTL`, or 90 days).
        #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL", value_parser = parse_lifetime)]
        ttl: Option<Duration>,
    },
}

/// `tessera credentials …`.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum CredentialsAction {
    /// Print the records of issued credentials, oldest first (never a secret).
    List {
        /// Only this user id or workspace id.
        #[arg(long)]
        subject: Option<String>,
        /// Include revoked credentials.
        #[arg(long)]
        include_revoked: bool,
        /// Include expired credentials.
        #[arg(long)]
        include_expired: bool,
    },
    /// Revoke a credential by its public id (e.g. `usr_0123456789abcdef`).
    Revoke {
        /// The credential's public id.
        id: String,
    },
}

/// `tessera users …`.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum UsersAction {
    /// Enable a disabled user again (its revoked credentials stay revoked).
    Enable {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
    },
}
