//! The remote admin commands (`tessera token|user|workspace|audit|verify|
//! ticket|secrets`): gRPC calls through `tessera-client`, never the database.
//!
//! Exit codes: 0 done; 1 a local problem (arguments, unreadable files, no
//! credential); 2 the server is unreachable (or did not answer in time);
//! 3 refused (`UNAUTHENTICATED`, `PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`);
//! 4 not found; 5 rejected (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`,
//! `ALREADY_EXISTS`); 6 any other server error.

mod args;
mod credentials;
mod output;
mod secrets;
mod workspaces;

use std::io::Read;
use std::path::Path;

use tessera_client::tonic::{Code, Status};
use tessera_client::{Client, ClientTls, Secret};

pub(crate) use args::{
    AuditCommand, Connection, SecretsCommand, TicketCommand, TokenCommand, UserCommand,
    WorkspaceCommand,
};
use output::Printed;

/// Exit code: a local problem.
const LOCAL: i32 = 1;

/// Why a remote command failed, with its exit code.
pub(crate) struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    fn local(message: impl Into<String>) -> Self {
        Self {
            code: LOCAL,
            message: message.into(),
        }
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        let code = match status.code() {
            Code::Unavailable | Code::DeadlineExceeded => 2,
            Code::Unauthenticated | Code::PermissionDenied | Code::ResourceExhausted => 3,
            Code::NotFound => 4,
            Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => 5,
            _ => 6,
        };
        let name = format!("{:?}", status.code());
        Self {
            code,
            message: format!("{name}: {}", status.message()),
        }
    }
}

/// A remote command.
pub(crate) enum Remote {
    /// `tessera token …`.
    Token(TokenCommand),
    /// `tessera user …`.
    User(UserCommand),
    /// `tessera workspace …`.
    Workspace(WorkspaceCommand),
    /// `tessera audit …`.
    Audit(AuditCommand),
    /// `tessera verify [TOKEN]`.
    Verify(Option<String>),
    /// `tessera ticket …`.
    Ticket(TicketCommand),
    /// `tessera secrets …`.
    Secrets(SecretsCommand),
}

/// Runs `command` against the server `connection` names; prints its
/// result on stdout (errors on stderr) and returns the exit code.
pub(crate) async fn run(connection: &Connection, command: Remote) -> i32 {
    let result = match prepare(connection, &command).await {
        Ok((client, in_body)) => dispatch(client, command, in_body).await,
        Err(failure) => Err(failure),
    };
    match result {
        Ok(printed) => {
            if connection.json {
                println!("{}", printed.json);
            } else if !printed.text.is_empty() {
                println!("{}", printed.text);
            }
            0
        }
        Err(failure) => {
            eprintln!("tessera: {}", failure.message);
            failure.code
        }
    }
}

/// The client for `command`, and the caller's credential when `command`
/// sends it in its message instead (an invite being redeemed, or an install
/// token, is no bearer).
async fn prepare(
    connection: &Connection,
    command: &Remote,
) -> Result<(Client, Option<Secret>), Failure> {
    let credential = credential(connection)?;
    if matches!(
        command,
        Remote::User(UserCommand::Accept { .. } | UserCommand::FirstAdmin { .. })
    ) {
        Ok((connect(connection, None).await?, credential))
    } else {
        Ok((connect(connection, credential).await?, None))
    }
}

async fn dispatch(
    client: Client,
    command: Remote,
    in_body: Option<Secret>,
) -> Result<Printed, Failure> {
    match command {
        Remote::Token(command) => credentials::token(client, command).await,
        Remote::User(command) => credentials::user(client, command, in_body).await,
        Remote::Workspace(command) => workspaces::run(client, command).await,
        Remote::Audit(command) => credentials::audit(client, command).await,
        Remote::Verify(token) => credentials::verify(client, token).await,
        Remote::Ticket(command) => credentials::ticket(client, command).await,
        Remote::Secrets(command) => secrets::run(client, command).await,
    }
}

/// A client for `connection`, calling with `bearer`.
async fn connect(connection: &Connection, bearer: Option<Secret>) -> Result<Client, Failure> {
    let tls = tls(connection)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = if connection.addr.contains("://") {
        connection.addr.clone()
    } else {
        format!("{scheme}://{}", connection.addr)
    };
    let mut builder = Client::builder(endpoint);
    if let Some(secret) = bearer {
        builder = builder.bearer(secret);
    }
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    builder.connect().await.map_err(|err| {
        let message = super::probe::chain(&err);
        let local = !matches!(err, tessera_client::ConnectError::Transport(_));
        Failure {
            code: if local { LOCAL } else { 2 },
            message: format!(
                "cannot reach {}: {message}",
                without_userinfo(&connection.addr)
            ),
        }
    })
}

/// `addr` without a `user:password@` part, which must not be printed.
fn without_userinfo(addr: &str) -> String {
    let (scheme, rest) = addr.split_once("://").unwrap_or(("", addr));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    if scheme.is_empty() {
        rest.to_owned()
    } else {
        format!("{scheme}://{rest}")
    }
}

/// The caller's credential: `--token-file`, else `TESSERA_TOKEN`, else
/// none (for the calls anyone may make).
fn credential(connection: &Connection) -> Result<Option<Secret>, Failure> {
    let value = match &connection.token_file {
        Some(path) => read(path)?,
        None => std::env::var("TESSERA_TOKEN").unwrap_or_default(),
    };
    let value = value.trim();
    Ok((!value.is_empty()).then(|| Secret::new(value)))
}

fn tls(connection: &Connection) -> Result<Option<ClientTls>, Failure> {
    let Some(ca) = &connection.tls_ca else {
        return Ok(None);
    };
    let mut tls = ClientTls::with_ca(read(ca)?);
    if let (Some(cert), Some(key)) = (&connection.tls_cert, &connection.tls_key) {
        tls = tls.identity(read(cert)?, read(key)?);
    }
    if let Some(domain) = &connection.tls_domain {
        tls = tls.domain_name(domain.clone());
    }
    Ok(Some(tls))
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|err| Failure::local(format!("cannot read {}: {err}", path.display())))
}

/// A secret the command works on (a token to verify, a ticket): the
/// argument, or standard input when it is absent or `-` (which keeps it
/// out of `ps`).
fn argument_or_stdin(value: Option<String>, what: &str) -> Result<String, Failure> {
    let value = match value.filter(|value| value != "-") {
        Some(value) => value,
        None => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|err| Failure::local(format!("cannot read {what} from stdin: {err}")))?;
            input
        }
    };
    Ok(value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::without_userinfo;

    #[test]
    fn credentials_in_an_address_are_not_shown() {
        assert_eq!(
            without_userinfo("http://alice:S3cret@host:1/x"),
            "http://host:1/x"
        );
        assert_eq!(without_userinfo("alice:S3cret@host:1"), "host:1");
        assert_eq!(without_userinfo("127.0.0.1:50051"), "127.0.0.1:50051");
    }
}
