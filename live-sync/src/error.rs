//! [`Error`]: why building, starting or serving failed, worded as what to fix.

/// Why a server could not be built, started or served. Each message says
/// what went wrong and what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`Builder::start`](crate::Builder::start) was awaited outside a tokio
    /// runtime.
    #[error(
        "no tokio runtime: await Builder::start() inside one (#[tokio::main]), \
         use Builder::start_on(runtime) for another runtime, \
         or call Builder::run(addr), which starts its own"
    )]
    NoTokioRuntime,
    /// The store could not be opened.
    #[error("cannot open the store ({store}): {source}; {hint}")]
    Store {
        /// Which store (kind and location).
        store: String,
        /// What the store reported.
        source: Box<dyn std::error::Error + Send + Sync>,
        /// What usually fixes it.
        hint: &'static str,
    },
    /// The store opened but its records could not be loaded or recovered.
    #[error("cannot start from the store's records: {0}")]
    Start(#[from] adapter_common::StartError),
    /// The configuration cannot be served as given.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The address to listen on is not `HOST:PORT`.
    #[error("{addr:?} is not an address to listen on: expected HOST:PORT, such as 127.0.0.1:8080")]
    Address {
        /// The address given.
        addr: String,
    },
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source} (is the port taken? 127.0.0.1:0 picks a free one)")]
    Bind {
        /// The address given.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A server without hooks (everybody let in) was asked to listen on an
    /// address other machines can reach.
    #[error(
        "refusing to serve {addr} without authentication: set Builder::hooks(..) \
         to authenticate requests, or call Builder::allow_anonymous() to let everybody in"
    )]
    Unprotected {
        /// The address given.
        addr: String,
    },
    /// The broker URL is not `redis://HOST:PORT` or `nats://HOST:PORT`.
    #[error("broker {0}")]
    BrokerUrl(String),
    /// The broker link could not start (or this build lacks its feature).
    #[cfg(any(feature = "redis", feature = "nats"))]
    #[error(transparent)]
    Broker(#[from] live_broker::BrokerError),
    /// A broker was configured in a build with neither `redis` nor `nats`.
    #[error("a broker needs the cargo feature `redis` or `nats` of live-sync")]
    NoBrokerFeature,
    /// The runtime (or its threads) could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Serving failed after the server had started.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}
