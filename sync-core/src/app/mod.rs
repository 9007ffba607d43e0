//! The application state machine the engine and the client replica drive.

mod kv;

pub use kv::{KvApp, KvState, Mutator};

use serde_json::Value;

use crate::protocol::{ErrorCode, Mutation};

/// An application: turns mutations into changes and changes into state.
///
/// The engine keeps one `State` per scope and only ever changes it through
/// [`App::absorb`], so state, log and snapshot always agree and the server is a
/// function of its log. The same app runs in the client replica for optimistic
/// local apply, so `apply` must be deterministic and free of IO.
pub trait App {
    /// The state of one scope.
    type State: Clone + Default + std::fmt::Debug;

    /// Decides what `mutation` does given the scope's current state: the change
    /// payloads to append (possibly none), or why it is refused. Must not
    /// modify anything; the engine absorbs the returned changes itself.
    fn apply(&self, state: &Self::State, mutation: &Mutation) -> Result<Vec<Value>, AppError>;

    /// Folds one change payload (one that `apply` produced) into the state.
    fn absorb(&self, state: &mut Self::State, change: &Value);

    /// The JSON view of a scope served by snapshot.
    fn snapshot(&self, state: &Self::State) -> Value;

    /// [`App::snapshot`] encoded as JSON text. Override it to write the text
    /// straight from the state when building the `Value` first is costly.
    fn snapshot_json(&self, state: &Self::State) -> Vec<u8> {
        serde_json::to_vec(&self.snapshot(state)).unwrap_or_else(|_| b"null".to_vec())
    }

    /// Rebuilds a state from a value `snapshot` produced (used by trims,
    /// recovery from a trimmed log, and the client's 410 reset).
    fn restore(&self, snapshot: &Value) -> Result<Self::State, AppError>;
}

/// Whether an application error is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppErrorKind {
    /// The mutation can never succeed: recorded, advances the client's
    /// sequence, and replays return the same error.
    Permanent,
    /// The failure may pass (a dependency is down): not recorded; the rest of
    /// the push is not applied and the client retries later.
    Transient,
}

/// A refusal from [`App::apply`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    /// Permanent or transient.
    pub kind: AppErrorKind,
    /// The protocol code reported in the result (ignored for transient errors,
    /// which are always reported as `internal_error`).
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
}

impl AppError {
    /// A permanent error with `code`.
    pub fn permanent(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            kind: AppErrorKind::Permanent,
            code,
            message: message.into(),
        }
    }

    /// A permanent `invalid_mutation` error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::permanent(ErrorCode::Invalid, message)
    }

    /// A transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        AppError {
            kind: AppErrorKind::Transient,
            code: ErrorCode::Internal,
            message: message.into(),
        }
    }
}
