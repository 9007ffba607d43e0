//! The live + sync server on tokio: `cargo run --release -p adapter-tokio`.
//!
//! Listens on 127.0.0.1:8080 unless `--addr` says otherwise, keeps sync data
//! in a SQLite file (`--db`, default `live-sync.db` in the working directory),
//! in PostgreSQL shared with other nodes (`--db postgres://USER@HOST/DB`), or
//! in memory (`--memory`). `--help` lists every flag and its environment
//! variable. On loopback everyone may connect; any other address needs
//! `--jwt-secret` (or `--jwt-public-key`) for signed tokens, or an explicit
//! `--allow-anonymous`. `token --sub USER ...` prints a token signed with
//! `--jwt-secret` instead of serving.

use std::process::ExitCode;

use adapter_common::backplane::Broker;
use adapter_common::cli::{ServeArgs, StartupError};
use adapter_common::{Hooks, Server};
use adapter_tokio::{TokioRuntime, serve, serve_tls, shutdown_signal};
use clap::Parser;

fn main() -> ExitCode {
    let args = ServeArgs::parse();
    if let Some(status) = args.run_job(std::time::SystemTime::now()) {
        return status;
    }
    args.init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: ServeArgs) -> Result<(), StartupError> {
    args.check_protected()?;
    let tls = args.tls_config()?;
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let server = args.start_server(TokioRuntime::current()).await?;
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

/// Links the server to `broker` on this runtime.
#[cfg(any(feature = "redis", feature = "nats"))]
async fn start_broker<H: Hooks>(
    broker: &Broker,
    server: &Server<TokioRuntime, H>,
) -> Result<(), StartupError> {
    live_broker::start(broker, server.handle().clone()).await?;
    Ok(())
}

/// Without a broker feature, `--broker` is refused (never ignored).
#[cfg(not(any(feature = "redis", feature = "nats")))]
async fn start_broker<H: Hooks>(
    broker: &Broker,
    _server: &Server<TokioRuntime, H>,
) -> Result<(), StartupError> {
    Err(format!(
        "--broker {broker}: this build has no broker support; enable the cargo feature `redis` or `nats`"
    )
    .into())
}
