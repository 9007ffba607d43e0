//! The engine's configuration, outputs and caller-mistake errors.

use std::sync::Arc;

use crate::handler::Response;
use crate::store::Batch;

/// Identifies a request across the push round-trip; chosen by the adapter and
/// unique among its outstanding requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// How many recent results are kept per client and scope for replay.
    /// A client never has more than one push batch outstanding, so this only
    /// needs to exceed the push batch limit. Default 1024.
    pub client_results_kept: u64,
    /// How long (milliseconds of wall time) mutation-id records are kept for
    /// clients without a `client_id`. Default 24 h.
    pub id_retention_ms: u64,
    /// Pull page size used when a request asks for 0. Default 100.
    pub default_pull_limit: u64,
    /// Set when other engines write the same store (several server nodes on
    /// one database). An answer that depends on this engine's view being
    /// current without writing anything, a sequence gap, is then held for
    /// the next batch, which names the scope in [`crate::Batch::verify`]: a
    /// shared store refuses the batch if another node wrote that scope, the
    /// driver reloads it and pushes again, and the client's mutation is
    /// applied instead of refused. Default false (the engine is the only
    /// writer; a gap is answered at once).
    pub verify_sequence_gaps: bool,
    /// Log retention: keep at least this many changes per scope, and fewer
    /// than twice as many. When a batch makes a scope's durable log reach
    /// twice this length, the engine trims it back to the last
    /// `keep_changes` changes in the next batch ([`crate::Engine::trim`]),
    /// so the log, and the memory and disk it takes, stay bounded. A client
    /// whose cursor falls behind the trim gets 410 `cursor_too_old` and takes
    /// a snapshot. A trim costs about the scope's state (its base is the
    /// state at the trim's cursor, written with it); trimming half the log
    /// at a time spreads that over `keep_changes` changes. Default `None`:
    /// keep every change until the application trims.
    pub keep_changes: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            client_results_kept: 1024,
            id_retention_ms: 24 * 3600 * 1000,
            default_pull_limit: 100,
            verify_sequence_gaps: false,
            keep_changes: None,
        }
    }
}

/// A numbered batch to persist atomically, then acknowledge with
/// [`crate::Engine::advance`] (or report with
/// [`crate::Engine::handle_persist_failed`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// The batch number, increasing by one per Ready.
    pub number: u64,
    /// What to write. May be empty when the Ready only releases answers
    /// (replays) queued behind an earlier batch; persist it anyway (a no-op).
    /// Shared with the engine (which applies it on `advance`), so handing it
    /// to a blocking store thread copies nothing.
    pub persist: Arc<Batch>,
}

/// Something the driver must send, released only once durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The answer to a push.
    Response {
        /// The id given to [`crate::Engine::handle_push`].
        request_id: RequestId,
        /// Status and JSON body.
        response: Response,
    },
    /// Publish `{"cursor": cursor}` on live topic `sync:<scope>`.
    Poke {
        /// The scope that changed.
        scope: String,
        /// Its durable head.
        cursor: u64,
    },
}

impl Output {
    /// For a poke, the live topic (`sync:<scope>`) and data JSON to publish.
    pub fn poke_message(&self) -> Option<(String, String)> {
        match self {
            Output::Poke { scope, cursor } => {
                Some((format!("sync:{scope}"), format!("{{\"cursor\":{cursor}}}")))
            }
            Output::Response { .. } => None,
        }
    }
}

/// Mistakes of the code driving the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// `advance` or `handle_persist_failed` named a batch that is not the one
    /// handed out.
    #[error("batch {given} is not outstanding (outstanding: {outstanding:?})")]
    NotOutstanding {
        /// The number passed.
        given: u64,
        /// The batch actually outstanding, if any.
        outstanding: Option<u64>,
    },
    /// A trim asked to drop changes that are not durable yet.
    #[error("cannot trim {scope} before {before}: durable head is {head}")]
    TrimBeyondHead {
        /// Scope.
        scope: String,
        /// Requested first kept cursor.
        before: u64,
        /// The scope's durable head.
        head: u64,
    },
    /// `reload_scope` while the scope has work that is not durable.
    #[error("scope {scope:?} has work in flight; reload it once its batch is durable")]
    ScopeBusy {
        /// Scope.
        scope: String,
    },
    /// `reload_scope` got records that do not form a valid state.
    #[error("records of scope {scope:?} are invalid: {reason}")]
    BadRecords {
        /// Scope.
        scope: String,
        /// Why.
        reason: String,
    },
    /// `apply_scope_delta` got a delta that does not follow the records the
    /// engine holds of the scope; load the scope whole instead.
    #[error("delta of scope {scope:?} does not apply: {reason}")]
    DeltaMismatch {
        /// Scope.
        scope: String,
        /// Why.
        reason: crate::store::DeltaMismatch,
    },
    /// The application could not restore its own snapshot while trimming.
    #[error("trim of {scope} failed: {reason}")]
    TrimFailed {
        /// Scope.
        scope: String,
        /// Why.
        reason: String,
    },
}

/// Records a store returned that do not form a valid state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot recover scope {scope:?}: {reason}")]
pub struct RecoveryError {
    /// The scope.
    pub scope: String,
    /// Why.
    pub reason: String,
}
