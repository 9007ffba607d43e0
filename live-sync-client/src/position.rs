//! [`Position`]: where a reader stands on a topic the server keeps a history
//! of: the history's epoch and the offset of the last publication read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A position on a topic with history: `epoch` names the history (it changes
/// when the server loses it, on a restart for example) and `offset` is the
/// last publication read, dense per topic within the epoch (1, 2, 3, ...; 0
/// before the first).
///
/// The client keeps one per subscribed topic and names it (`since`) on every
/// resubscribe; [`LiveClient::position`](crate::LiveClient::position) reads
/// it, [`LiveClient::subscribe_from`](crate::LiveClient::subscribe_from)
/// starts from a saved one. It serializes as the wire's
/// `{"epoch": E, "offset": N}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The history's epoch; empty for a topic without history.
    pub epoch: String,
    /// The offset of the last publication read.
    pub offset: u64,
}

impl Position {
    /// The position `offset` in `epoch`.
    pub fn new(epoch: impl Into<String>, offset: u64) -> Self {
        Position {
            epoch: epoch.into(),
            offset,
        }
    }

    /// Whether this names a history (a non-empty epoch): only such a position
    /// can be resumed from.
    pub fn is_resumable(&self) -> bool {
        !self.epoch.is_empty()
    }

    /// The wire's `{"epoch": E, "offset": N}`.
    pub(crate) fn to_json(&self) -> Value {
        serde_json::json!({"epoch": self.epoch, "offset": self.offset})
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.epoch, self.offset)
    }
}
