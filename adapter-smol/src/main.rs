//! The live + sync server on smol: `cargo run --release -p adapter-smol`.
//!
//! The same flags as the tokio server (parsed by `adapter_common::cli`):
//! listens on 127.0.0.1:8080 unless `--addr` says otherwise, keeps sync data
//! in a SQLite file (`--db`, default `live-sync.db` in the working directory)
//! or in memory (`--memory`). `--help` lists every flag and its environment
//! variable. On loopback everyone may connect; any other address needs
//! `--jwt-secret` (or `--jwt-public-key`) for signed tokens, or an explicit
//! `--allow-anonymous`. `token --sub USER ...` prints a token signed with
//! `--jwt-secret` instead of serving. `--broker redis://...|nats://...`
//! links the node to a broker as on tokio: both brokers' client libraries
//! need tokio, so the link runs on a one-thread tokio runtime of its own
//! (`live_broker::start_on_own_thread`) and talks to the server through its
//! runtime-neutral handle.

use std::process::ExitCode;

use adapter_common::backplane::Broker;
use adapter_common::cli::{ServeArgs, StartupError};
use adapter_common::{Hooks, Server};
use adapter_smol::{ExecutorThreads, SmolRuntime, serve, serve_tls, shutdown_signal};
use clap::Parser;

fn main() -> ExitCode {
    let args = ServeArgs::parse();
    if let Some(status) = args.run_job(std::time::SystemTime::now()) {
        return status;
    }
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
    args.check_protected()?;
    let tls = args.tls_config()?;
    let listener = smol::net::TcpListener::bind(args.addr).await?;
    let server = args.start_server(rt).await?;
    if let Some(broker) = args.broker() {
        start_broker(&broker, &server).await?;
        tracing::info!(%broker, "live fans out through the broker");
    }
    args.log_listening(listener.local_addr()?);
    match tls {
        Some(tls) => serve_tls(listener, server, shutdown_signal(), tls).await?,
        None => serve(listener, server, shutdown_signal()).await?,
    }
    tracing::info!("stopped");
    Ok(())
}

/// Links the server to `broker` on the link's own thread and tokio runtime.
#[cfg(any(feature = "redis", feature = "nats"))]
async fn start_broker<H: Hooks>(
    broker: &Broker,
    server: &Server<SmolRuntime, H>,
) -> Result<(), StartupError> {
    live_broker::start_on_own_thread(broker, server.handle().clone()).await?;
    Ok(())
}

/// Without a broker feature, `--broker` is refused (never ignored).
#[cfg(not(any(feature = "redis", feature = "nats")))]
async fn start_broker<H: Hooks>(
    broker: &Broker,
    _server: &Server<SmolRuntime, H>,
) -> Result<(), StartupError> {
    Err(format!(
        "--broker {broker}: this build has no broker support; enable the cargo feature `redis` or `nats`"
    )
    .into())
}
