//! The `tessera` command: parse the command line, set up logging, run the
//! server or one of the commands beside it (local operator commands on the
//! database, the health probe).

mod args;
mod operator;
mod probe;
mod recovery;
mod remote;
mod rewrap;

use std::io::IsTerminal;
use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, ServeArgs};
use crate::domain::BannerSink;
use args::{Cli, Command};
use remote::Remote;

/// Runs `tessera` with the process's arguments; returns the exit code.
pub async fn main() -> i32 {
    // Usage errors exit 1, as every command's documented codes say (clap's
    // own default, 2, means "unreachable" to the remote commands and the
    // health probe); help and version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return i32::from(err.use_stderr());
        }
    };
    init_logging(cli.log_format);
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Migrate(args)) => operator::migrate(&args).await,
        Some(Command::Rewrap(args)) => rewrap::rewrap(&args).await,
        Some(Command::InstallToken { action, database }) => {
            operator::install_token(action, &database).await
        }
        Some(Command::AccessToken { action, database }) => {
            recovery::access_token(action, &database).await
        }
        Some(Command::Credentials { action, database }) => {
            recovery::credentials(action, &database).await
        }
        Some(Command::Users { action, database }) => recovery::users(action, &database).await,
        Some(Command::GenSecret { key }) => operator::gen_secret(key),
        Some(Command::Health(args)) => return probe::health(&args).await,
        Some(Command::Token { action, connection }) => {
            return remote::run(&connection, Remote::Token(action)).await;
        }
        Some(Command::User { action, connection }) => {
            return remote::run(&connection, Remote::User(action)).await;
        }
        Some(Command::Workspace { action, connection }) => {
            return remote::run(&connection, Remote::Workspace(action)).await;
        }
        Some(Command::Audit { action, connection }) => {
            return remote::run(&connection, Remote::Audit(action)).await;
        }
        Some(Command::Verify { token, connection }) => {
            return remote::run(&connection, Remote::Verify(token)).await;
        }
        Some(Command::Ticket { action, connection }) => {
            return remote::run(&connection, Remote::Ticket(action)).await;
        }
        Some(Command::Secrets { action, connection }) => {
            return remote::run(&connection, Remote::Secrets(action)).await;
        }
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tessera",
                &mut std::io::stdout(),
            );
            return 0;
        }
        None => match ServeArgs::from_env() {
            Ok(args) => serve(args).await,
            Err(err) => err.exit(),
        },
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            // Named after the binary, as operators read it: `tessera: …`.
            tracing::error!(target: "tessera", "{message}");
            1
        }
    }
}

fn init_logging(format: LogFormat) {
    // Migrations log every idempotent check at info; keep startup quiet.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sea_orm_migration=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let shutdown = shutdown_signal();
    let hangups = hangups();
    let settings = args.settings(BannerSink::stdout())?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.listen))?;
    let addr = listener.local_addr().map_err(|err| err.to_string())?;
    tracing::info!(%addr, "listening");
    crate::server::serve(settings, listener, shutdown, hangups)
        .await
        .map_err(|err| err.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Runs the server as `tessera serve <flags>` would (the environment filling
/// in what `flags` leave out), on `listener` until `shutdown` completes.
///
/// For harnesses that need the server inside their own process: the fuzz
/// targets, whose coverage feedback only sees code that runs there. Nothing
/// is logged unless the caller installs a tracing subscriber; the
/// install-token banner still goes to standard output.
#[doc(hidden)]
pub async fn serve_in_process(
    flags: &[&str],
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let args = ServeArgs::from_flags(flags).map_err(|err| err.to_string())?;
    let settings = args.settings(BannerSink::stdout())?;
    // No signal reaches an in-process server: nothing ever reloads it.
    let hangups = Arc::new(Notify::new());
    crate::server::serve(settings, listener, shutdown, hangups)
        .await
        .map_err(|err| err.to_string())
}

/// Notified on each SIGHUP, which asks for a reload (service managers send
/// it for one; a closed terminal sends it too, and by default it would
/// kill the server). Like [`shutdown_signal`], installs the handler at
/// once; a SIGHUP before the server can reload is kept for it.
fn hangups() -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                let notify = notify.clone();
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        tracing::info!("SIGHUP received; reloading");
                        notify.notify_one();
                    }
                });
            }
            Err(err) => tracing::warn!(error = %err, "cannot listen for SIGHUP"),
        }
    }
    notify
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: the server logs `listening`
/// and runs its migrations before it polls it, and a signal in that window
/// must stop it cleanly, not by the signal's default action.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                (terminate, _) => {
                    if let Err(err) = terminate {
                        tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the server");
                    }
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
