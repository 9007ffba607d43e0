//! Mistakes of the calling code and states in which a request cannot be
//! carried out. Network trouble is never an error here: it is reported as a
//! [`LiveEvent`](super::LiveEvent) and handled by reconnecting.

use sync_core::ReplicaError;

/// Why a client call could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not a `ws://` URL with a host.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header name or value given in the options is not valid HTTP.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// Outside a tokio runtime, the client's own IO thread and runtime could
    /// not be started (the operating system refused a thread or a reactor).
    #[error("cannot start the client's IO runtime: {0}")]
    NoRuntime(String),
    /// The client was closed (or its connection task has ended).
    #[error("the client is closed")]
    Closed,
    /// A message was not sent because there is no connection right now. Live
    /// messages are at-most-once: use sync for data that must arrive.
    #[error("not connected")]
    NotConnected,
    /// The local mutator refused the mutation; nothing was queued.
    #[error(transparent)]
    Mutation(#[from] ReplicaError),
}
