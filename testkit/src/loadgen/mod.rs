//! The load generator behind the `loadgen` binary: fan-out, sync and idle modes
//! against a running server on loopback.
//!
//! One tokio runtime drives every connection; each connection's task keeps its
//! own latency histogram, merged at the end, so the hot path shares no lock.
//! Nothing here asserts a figure: it measures and prints.
//!
//! ```text
//! # fan-out: 1000 subscribers on one topic, 500 publishes/s for 10 s
//! cargo run --release -p testkit --bin loadgen -- fanout --subscribers 1000 --topics 1 --publishers 1 --rate 500 --duration 10
//! # overload: 2000 publishes/s offered (watch "closed as slow" and server RSS)
//! cargo run --release -p testkit --bin loadgen -- fanout --subscribers 1000 --publishers 4 --rate 2000 --duration 10
//! # sync: 32 clients, one mutation per request over keep-alive, then pull
//! cargo run --release -p testkit --bin loadgen -- sync --clients 32 --duration 10 --scope load
//! # pokes: pushes on one node, their pokes awaited on another (cross-node latency)
//! cargo run --release -p testkit --bin loadgen -- --url http://127.0.0.1:18901 pokes --watch-url http://127.0.0.1:18902
//! # idle: 10 000 connections held 30 s, server RSS delta per connection
//! ulimit -n 65536; cargo run --release -p testkit --bin loadgen -- idle --connections 10000 --hold 30 --server-pid $(pgrep -n adapter-tokio)
//! # churn: 200 clients a second arriving, subscribing, hearing themselves, leaving after 1 s
//! cargo run --release -p testkit --bin loadgen -- churn --rate 200 --duration 60
//! # a paced, verified sync load: 5000 pushes/s over 100 keys per client, then every client checked
//! cargo run --release -p testkit --bin loadgen -- sync --rate 5000 --keys 100 --scope-per-client --no-pull --verify
//! # resume: 1000 clients on node A lose it while B keeps publishing (restart A meanwhile)
//! cargo run --release -p testkit --bin loadgen -- --url http://127.0.0.1:18901 resume --publish-url http://127.0.0.1:18902
//! ```
//!
//! Global flags: `--url http://HOST:PORT` (default `http://127.0.0.1:8080`),
//! `--ws-path` (`/ws`), `--sync-prefix` (`/_sync`), `--token T` (sent as
//! `Authorization: Bearer T` on every connection and request). Fan-out latency is
//! measured from the publisher's send to the subscriber's receipt on one
//! monotonic clock; deliveries per second count from the first publish to the
//! last delivery. Fan-out waits `--settle` seconds after subscribing (the server
//! sends no subscribe confirmation) and reads `--drain` seconds after the last
//! publish.

pub mod args;
pub mod churn;
pub mod fanout;
pub mod idle;
pub mod pokes;
pub mod resume;
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
        read_buffer_size: Some(4 * 1024),
        ..Default::default()
    }
}

/// Runs the mode `cli` names and returns its report as text.
pub async fn run(cli: &args::Cli) -> Result<String, LoadError> {
    Ok(match &cli.mode {
        args::Mode::Fanout(a) => fanout::run(cli, a).await?.to_string(),
        args::Mode::Sync(a) => sync_load::run(cli, a).await?.to_string(),
        args::Mode::Idle(a) => idle::run(cli, a).await?.to_string(),
        args::Mode::Pokes(a) => pokes::run(cli, a).await?.to_string(),
        args::Mode::Churn(a) => churn::run(cli, a).await?.to_string(),
        args::Mode::Resume(a) => resume::run(cli, a).await?.to_string(),
    })
}
