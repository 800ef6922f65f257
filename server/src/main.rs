//! The `tessera` binary; everything it does is in `cli/`.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() {
    let code = tessera_server::cli::main().await;
    // Exit here rather than by dropping the runtime: after a drain timeout,
    // abandoned calls may still wait on the database, and dropping the
    // runtime would wait for them.
    std::process::exit(code)
}
