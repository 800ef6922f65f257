//! The `tessera` binary: parse the command line, set up logging, run.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use tessera_server::config::{Cli, Command, LogFormat, ServeArgs};
use tessera_server::store::SeaStore;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Migrate(args)) => migrate(&args.database_url).await,
        None => match ServeArgs::from_env() {
            Ok(args) => serve(args).await,
            Err(err) => err.exit(),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("tessera: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let settings = args.settings()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.listen))?;
    let addr = listener.local_addr().map_err(|err| err.to_string())?;
    tracing::info!(%addr, "listening");
    tessera_server::serve(settings, listener, shutdown_signal())
        .await
        .map_err(|err| err.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(database_url: &str) -> Result<(), String> {
    let store = SeaStore::connect(database_url)
        .await
        .map_err(|err| format!("cannot open the database: {err}"))?;
    store
        .migrate()
        .await
        .map_err(|err| format!("migration failed: {err}"))?;
    store.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
