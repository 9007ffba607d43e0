//! The load generator behind the `loadgen` binary: fan-out, sync and idle modes
//! against a running server on loopback.
//!
//! One tokio runtime drives every connection; each connection's task keeps its
//! own latency histogram, merged at the end, so the hot path shares no lock.

pub mod args;
pub mod fanout;
pub mod idle;
pub mod stats;
pub mod sync_load;

use crate::ws_client::{ConnectOptions, TokenPlacement};

/// Why a load run could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Arguments that cannot work.
    #[error("bad arguments: {0}")]
    Args(String),
    /// A connection that the run cannot do without failed.
    #[error("connect: {0}")]
    Connect(String),
    /// The server answered wrongly.
    #[error("server: {0}")]
    Server(String),
    /// A task panicked.
    #[error("task: {0}")]
    Task(String),
}

/// Connection options for load connections: `--token` as a bearer token and a
/// small read buffer, so ten thousand connections fit in the generator's memory.
pub fn token_opts(cli: &args::Cli) -> ConnectOptions {
    ConnectOptions {
        token: cli.token.clone().map(|t| (t, TokenPlacement::Header)),
        read_buffer_size: Some(8 * 1024),
        ..Default::default()
    }
}

/// Runs the mode `cli` names and returns its report as text.
pub async fn run(cli: &args::Cli) -> Result<String, LoadError> {
    Ok(match &cli.mode {
        args::Mode::Fanout(a) => fanout::run(cli, a).await?.to_string(),
        args::Mode::Sync(a) => sync_load::run(cli, a).await?.to_string(),
        args::Mode::Idle(a) => idle::run(cli, a).await?.to_string(),
    })
}
