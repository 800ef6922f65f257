//! The remote commands' command line: how to reach the server, whose
//! credential to call with, and what to do.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::parse_lifetime;

/// How a remote command reaches Tessera and authenticates. The caller's
/// credential is never a flag value (it would show in `ps`): it comes from
/// `TESSERA_TOKEN` or a file.
#[derive(Clone, Debug, Args)]
pub(crate) struct Connection {
    /// The server, e.g. `127.0.0.1:50051` or `https://tessera:50051`.
    #[arg(
        long,
        env = "TESSERA_ADDR",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub(crate) addr: String,
    /// A file holding the caller's credential (else `TESSERA_TOKEN`).
    #[arg(long, global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// PEM CA to verify the server with: the connection uses TLS.
    #[arg(long, global = true)]
    pub(crate) tls_ca: Option<PathBuf>,
    /// PEM client certificate, for a server that requires one.
    #[arg(long, global = true, requires_all = ["tls_ca", "tls_key"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// Its PEM key.
    #[arg(long, global = true, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// The name to verify the server's certificate for (default: the
    /// host of `--addr`).
    #[arg(long, global = true, requires = "tls_ca")]
    pub(crate) tls_domain: Option<String>,
    /// Print JSON (one document) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// `tessera token …`: the caller's (or, for admins, anybody's) credentials.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Mint an access token for the calling user (printed once).
    Create {
        /// A name to tell it apart, e.g. `laptop`.
        #[arg(long, default_value = "")]
        name: String,
        /// Its lifetime, e.g. `30d` (default: the server's).
        #[arg(long, value_parser = parse_lifetime)]
        ttl: Option<std::time::Duration>,
    },
    /// List credentials' records (yours; an admin's: anybody's).
    List {
        /// Whose: a user id or workspace id (admins; empty: everybody's).
        #[arg(long, default_value = "")]
        subject: String,
        /// Include revoked ones.
        #[arg(long)]
        include_revoked: bool,
        /// Include expired ones.
        #[arg(long)]
        include_expired: bool,
    },
    /// Revoke a credential by its public id (e.g. `usr_0123456789abcdef`).
    Revoke {
        /// The credential id.
        id: String,
    },
}

/// `tessera user …`.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Invite a user (an admin user only); prints the one-shot invite.
    Invite {
        /// The new user's e-mail.
        email: String,
        /// Display name (default: the e-mail's local part).
        #[arg(long, default_value = "")]
        name: String,
        /// A group to join; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// How long the invite lasts (default 7 days).
        #[arg(long, value_parser = parse_lifetime)]
        ttl: Option<std::time::Duration>,
    },
    /// Redeem the invite in `TESSERA_TOKEN` (or `--token-file`); prints
    /// the first access token.
    Accept {
        /// Name of the access token.
        #[arg(long, default_value = "")]
        token_name: String,
    },
    /// Create the first administrator with the install token in
    /// `TESSERA_TOKEN` (or `--token-file`), as printed in the server's
    /// first-boot banner; prints the administrator's access token.
    FirstAdmin {
        /// The administrator's e-mail.
        email: String,
        /// Display name (default: the e-mail's local part).
        #[arg(long, default_value = "")]
        name: String,
    },
}

/// `tessera workspace …`.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum WorkspaceCommand {
    /// Create a workspace; prints its registration token and inbound secret.
    Provision {
        /// The workspace id.
        id: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Register as the workspace's runtime (its registration or auth
    /// token in `TESSERA_TOKEN`).
    Register {
        /// The workspace id.
        id: String,
        /// Rotate the auth token.
        #[arg(long)]
        reissue_auth_token: bool,
        /// Confirm holding the next inbound secret with this id.
        #[arg(long, default_value = "")]
        held_inbound_secret_id: String,
    },
    /// Start a rotation of the inbound secret.
    RotateInbound {
        /// The workspace id.
        id: String,
        /// Even during a grace, which ends at once.
        #[arg(long)]
        force: bool,
    },
    /// Replace the registration token (prints the new one).
    ReissueRegistration {
        /// The workspace id.
        id: String,
        /// Also revoke its auth tokens.
        #[arg(long)]
        revoke_auth_tokens: bool,
    },
    /// Revoke every credential of the workspace and remove it.
    Delete {
        /// The workspace id.
        id: String,
    },
    /// Print the current inbound secret.
    InboundSecret {
        /// The workspace id.
        id: String,
    },
}

/// `tessera audit …`.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// The audit log, newest first.
    List {
        /// Only this actor.
        #[arg(long, default_value = "")]
        actor: String,
        /// Only where this credential was presented.
        #[arg(long, default_value = "")]
        credential_id: String,
        /// Only this action, e.g. `bearer.verify`.
        #[arg(long, default_value = "")]
        action: String,
        /// Only events at most this long ago, e.g. `1h`.
        #[arg(long, value_parser = parse_lifetime)]
        since: Option<std::time::Duration>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// `tessera ticket …`.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum TicketCommand {
    /// Mint a single-use ticket (printed once).
    Mint {
        /// The user it stands for.
        #[arg(long)]
        user_id: String,
        /// Its identity provider.
        #[arg(long)]
        provider: String,
        /// What it may be used for, e.g. `ws-upgrade`.
        #[arg(long, default_value = "")]
        purpose: String,
        /// Its lifetime in seconds (default: the server's).
        #[arg(long, default_value_t = 0)]
        ttl_seconds: u32,
    },
    /// Consume a ticket, read from standard input.
    Consume {
        /// The purpose it was minted for.
        #[arg(long, default_value = "")]
        purpose: String,
    },
}

/// `tessera secrets …`: the configured service secrets.
#[derive(Clone, Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// For each service: when its current and previous secret were last
    /// presented (any replica), and whether the previous one is safe to
    /// retire (an admin's credential).
    Status {
        /// How long the previous secret must have gone unpresented to be
        /// safe to retire.
        #[arg(long, default_value = "15m", value_parser = parse_lifetime)]
        quiet: std::time::Duration,
    },
}
