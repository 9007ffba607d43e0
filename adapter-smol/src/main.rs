//! The live + sync server on smol: `cargo run --release -p adapter-smol`.
//!
//! The same flags as the tokio server (parsed by `adapter_common::cli`):
//! listens on 127.0.0.1:8080 unless `--addr` says otherwise, keeps sync data
//! in a SQLite file (`--db`, default `live-sync.db` in the working directory)
//! or in memory (`--memory`). `--help` lists every flag and its environment
//! variable. Everyone may connect: embed the library with your own hooks to
//! authenticate.

use std::process::ExitCode;

use adapter_common::cli::{ServeArgs, StartupError};
use adapter_smol::{ExecutorThreads, SmolRuntime, serve, shutdown_signal};
use clap::Parser;

fn main() -> ExitCode {
    let args = ServeArgs::parse();
    args.init_logging();
    let rt = SmolRuntime::new();
    // One worker per core runs every task; this thread runs only the accept
    // loop (as the tokio server's main thread does).
    let workers = match ExecutorThreads::per_core(&rt) {
        Ok(workers) => workers,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the executor threads");
            return ExitCode::FAILURE;
        }
    };
    let result = smol::block_on(run(rt.clone(), args));
    drop(workers);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(rt: SmolRuntime, args: ServeArgs) -> Result<(), StartupError> {
    let listener = smol::net::TcpListener::bind(args.addr).await?;
    let server = args.start_server(rt).await?;
    args.log_listening(listener.local_addr()?);
    serve(listener, server, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
