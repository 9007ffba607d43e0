//! What the server core asks of the loops around it ([`Output`]), and the
//! small types its inputs and outputs share. A leaf module: the machine and
//! the store procedures both import it, it imports neither.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use live_core::{CloseReason, OutFrame, SessionId};
use sync_core::store::{ScopeMark, ScopeUpdate};
use sync_core::{Batch, RequestId, Response};

use crate::broker::BackplaneCommand;
use crate::error::ServerError;

/// Names one server-side command whose result comes later as
/// [`Output::Done`] (a trim resolves once its batch is durable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// What the loops around the core must do, drained with
/// [`crate::ServerCore::poll_output`] and carried out in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output<U> {
    /// Write `frame` to the session's socket; once written, report it with
    /// [`crate::ServerCore::handle_flushed`].
    Send {
        /// The session.
        id: SessionId,
        /// The frame (its payload may be shared with other sessions).
        frame: OutFrame,
    },
    /// Write a close frame, then end the transport (after the close grace).
    Close {
        /// The session.
        id: SessionId,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The session ended (after its `Close`, if any): nothing more will be
    /// sent to it; drop what the loop keeps for it. Also the application's
    /// close notification (`user` is `None` if it never authenticated).
    Closed {
        /// The session.
        id: SessionId,
        /// Why it ended.
        reason: CloseReason,
        /// Its authenticated value.
        user: Option<U>,
    },
    /// An application message (not a built-in command nor `_sync`) for the
    /// application's handler. Handle it before the next input so replies
    /// keep their order.
    Message {
        /// The sender.
        id: SessionId,
        /// The envelope's topic.
        topic: String,
        /// The envelope's `data`, raw JSON as received.
        data: Bytes,
    },
    /// A session sent a token refresh: verify `token` and answer with
    /// [`crate::ServerCore::handle_refresh`] (only with
    /// [`crate::CoreConfig::token_refresh`]).
    Refresh {
        /// The session.
        id: SessionId,
        /// The token as sent.
        token: String,
    },
    /// The answer to a sync request that came in over HTTP.
    Answer {
        /// The id [`crate::ServerCore::handle_http_sync`] returned.
        request: RequestId,
        /// Status and JSON body.
        response: Response,
    },
    /// Persist this batch (see [`crate::jobs::persist`]) and report with
    /// [`crate::ServerCore::handle_persisted`]. At most one is outstanding,
    /// and no [`Output::Reload`] runs beside it.
    Persist(PersistJob),
    /// Read these scopes from the store (see [`crate::jobs::reload`]) and
    /// report with [`crate::ServerCore::handle_reloaded`]. Never runs beside
    /// a [`Output::Persist`].
    Reload(ReloadJob),
    /// Hand this to the broker link.
    Broker(BackplaneCommand),
    /// A server-side command named by `ticket` has finished.
    Done {
        /// The command's ticket.
        ticket: Ticket,
        /// Its outcome.
        result: Result<(), ServerError>,
    },
    /// Something an operator should read in the log.
    Notice(Notice),
    /// A shutdown has finished: every accepted push was persisted and
    /// answered. Emitted once; nothing follows it.
    Stopped,
}

/// A numbered batch to make durable, with what the store needs to recover
/// when another node wrote the same scopes.
#[derive(Debug, Clone)]
pub struct PersistJob {
    /// Give it back to [`crate::ServerCore::handle_persisted`].
    pub number: u64,
    /// What to write, atomically.
    pub batch: Arc<Batch>,
    /// Scopes the store must stop believing this node holds (a reload the
    /// engine refused), told before the write.
    pub forget: Vec<String>,
    /// For a shared store: where this node's durable records of each scope
    /// the batch writes or verifies end, so a scope refused as stale is read
    /// from there on. Empty for a store of one's own.
    pub marks: BTreeMap<String, Option<ScopeMark>>,
}

/// Scopes to read again because other nodes wrote them.
#[derive(Debug, Clone)]
pub struct ReloadJob {
    /// Each scope and where this node's records of it end (`None`: read it
    /// whole).
    pub scopes: Vec<(String, Option<ScopeMark>)>,
    /// As [`PersistJob::forget`].
    pub forget: Vec<String>,
    /// Those of `scopes` to lock until the next [`Output::Persist`] (see
    /// [`sync_core::Store::lock_scopes`]): pushes wait for this read, so the
    /// batch they make follows every other node's writes.
    pub lock: Vec<String>,
}

/// Why a batch was not persisted, and what the core needs to recover.
#[derive(Debug, Clone, Default)]
pub struct PersistFailure {
    /// The store's error message.
    pub message: String,
    /// The store could not be reached: answer 503, or on a shared store try
    /// the batch's pushes again for a while first (whether the batch landed
    /// may be unknown: see `core/persist.rs`).
    pub unavailable: bool,
    /// Scopes another node changed, already read back under the store's
    /// lock (a stale refusal).
    pub reloaded: Vec<ScopeUpdate>,
}

impl PersistFailure {
    /// A failure that is neither an outage nor a stale refusal.
    pub fn other(message: impl Into<String>) -> Self {
        PersistFailure {
            message: message.into(),
            ..PersistFailure::default()
        }
    }
}

/// What a reload read: each scope's update, and the error that stopped it
/// early, if any.
#[derive(Debug, Clone, Default)]
pub struct Reloaded {
    /// The scopes read.
    pub updates: Vec<ScopeUpdate>,
    /// Why the rest was not read.
    pub error: Option<String>,
    /// The error means the store could not be reached (see
    /// [`sync_core::Store::is_unavailable`]).
    pub unavailable: bool,
}

/// Why the core wants to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimerReason {
    /// A hub timer (heartbeat, idle, auth deadline, authorization deadline).
    Hub(live_core::TimerReason),
    /// A session's credential expires.
    TokenExpiry,
    /// Scopes whose read from a shared store failed are read again (those
    /// watched here; the others when a request names them).
    ReadRetry,
    /// The pause after a batch met an outage of a shared store is over: the
    /// pushes waiting for it are tried again.
    StoreRetry,
}

/// A deadline and why.
pub type Deadline = (Instant, TimerReason);

/// Something worth an operator's attention. Not an error of the caller: the
/// core has already done what the situation asks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The store failed to persist a batch; its pushes were answered with
    /// errors (or pushed again, for a stale refusal).
    PersistFailed {
        /// The batch.
        batch: u64,
        /// The store's message.
        message: String,
        /// Another node wrote the batch's scopes; they were reloaded.
        stale: bool,
    },
    /// A shared store could not be reached for a batch (its session ended,
    /// say): every push of it is tried again, in the next batch, so none
    /// was answered yet. Once `CoreConfig::outage_wait` has passed, failed
    /// pushes are answered 503 and [`Notice::PersistFailed`] says so.
    PersistRetried {
        /// The batch.
        batch: u64,
        /// The store's message.
        message: String,
        /// How many pushes are tried again.
        pushes: usize,
    },
    /// Reading scopes another node wrote failed; they are read again with
    /// the next notice or refusal.
    ReloadFailed {
        /// The store's message.
        message: String,
    },
    /// The engine refused a reloaded scope (local work in flight); the store
    /// is told to forget it, so the next batch on it is refused and reloads it.
    ReloadRefused {
        /// The scope.
        scope: String,
    },
    /// A flush report claimed more than was queued (a loop's bug).
    FlushRefused {
        /// The hub's message.
        message: String,
    },
    /// A publish from another node could not be delivered (bad topic or data).
    RemoteRefused {
        /// The topic.
        topic: String,
        /// The hub's message.
        message: String,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::PersistFailed {
                batch,
                message,
                stale: false,
            } => write!(f, "persisting batch {batch} failed: {message}"),
            Notice::PersistFailed { batch, message, .. } => write!(
                f,
                "batch {batch} refused ({message}): another node wrote its scopes first; caught up, pushing again"
            ),
            Notice::PersistRetried {
                batch,
                message,
                pushes,
            } => write!(
                f,
                "persisting batch {batch} failed: {message}; trying its {pushes} pushes again"
            ),
            Notice::ReloadFailed { message } => {
                write!(f, "reloading scopes changed elsewhere failed: {message}")
            }
            Notice::ReloadRefused { scope } => {
                write!(
                    f,
                    "scope {scope} busy, not reloaded; its next batch reloads it"
                )
            }
            Notice::FlushRefused { message } => write!(f, "flush report refused: {message}"),
            Notice::RemoteRefused { topic, message } => {
                write!(f, "publish from another node on {topic} refused: {message}")
            }
        }
    }
}
