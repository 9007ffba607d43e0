//! Mistakes of the calling code (and the one outcome every command shares:
//! the server has stopped). Peer faults never come out here: they become
//! closes and error answers.

use live_core::HubError;
use sync_core::EngineError;

/// Why a command on the server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The hub refused the command (unknown session, bad topic, invalid JSON).
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The sync engine refused the command (for example a trim past the head).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed to persist the batch carrying the command.
    #[error("store failed: {0}")]
    Store(String),
    /// The server has stopped.
    #[error("server stopped")]
    Stopped,
}
