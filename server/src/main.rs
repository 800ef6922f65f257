//! The `tessera` binary; everything it does is in `cli/`.
#![forbid(unsafe_code)]

/// jemalloc, not glibc's malloc, which took about a sixth of the server's
/// CPU under load (tokio's workers and sqlx's connection threads each
/// allocate and free). The figures that chose it are in the README
/// ("Where the time goes").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let code = tessera_server::cli::main().await;
    // Exit here rather than by dropping the runtime: after a drain timeout,
    // abandoned calls may still wait on the database, and dropping the
    // runtime would wait for them.
    std::process::exit(code)
}
