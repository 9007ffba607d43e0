//! One session's state inside the hub.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::options::SubscribeOptions;
use crate::{AuthorizeTicket, Command, OutFrame, SessionId, TimerReason};

/// Frames waiting for room in a session's send queue, in order: a replay
/// that did not fit, then everything sent to the session after it (see
/// `hub/backlog.rs`).
pub(crate) struct Backlog {
    pub(crate) frames: VecDeque<OutFrame>,
    /// Most frames it may hold: the replays it took plus one send queue's
    /// worth of what came after. A reader that stops reading fills it and
    /// is closed as slow.
    pub(crate) limit: usize,
}

/// Where a session is in its life. Closed sessions are removed from the hub, so
/// there is no closed phase.
pub(crate) enum Phase<A> {
    /// Opened, waiting for [`Hub::handle_auth`](crate::Hub::handle_auth).
    Authenticating { deadline: Option<Instant> },
    /// Authenticated with this value.
    Active { auth: A },
}

/// A client command waiting for an asynchronous authorization answer.
pub(crate) struct PendingAuthorize {
    pub(crate) ticket: AuthorizeTicket,
    pub(crate) command: Command,
    pub(crate) topic: String,
    /// For a publish: the raw JSON data to fan out once allowed.
    pub(crate) data: Bytes,
    /// What else the command asked (a subscribe's options, or that it is a
    /// presence query needing the right to subscribe).
    pub(crate) detail: Detail,
    pub(crate) deadline: Option<Instant>,
}

/// What a client command asks beyond its [`Command`] and topic.
#[derive(Debug, Clone, Default)]
pub(crate) enum Detail {
    /// Nothing: a plain command.
    #[default]
    Plain,
    /// A subscribe with options (`since`, `history`, `presence`).
    Subscribe(SubscribeOptions),
    /// A presence query; authorized as a subscribe to its topic.
    PresenceQuery,
}

pub(crate) struct Session<A> {
    pub(crate) id: SessionId,
    pub(crate) phase: Phase<A>,
    pub(crate) topics: BTreeSet<Arc<str>>,
    /// Messages handed to the adapter and not yet reported flushed.
    pub(crate) queued_messages: usize,
    /// Bytes handed to the adapter and not yet reported flushed.
    pub(crate) queued_bytes: usize,
    /// Messages received while blocked, processed in order once unblocked.
    /// Payloads held in order; text ones were already checked to be UTF-8.
    pub(crate) held: VecDeque<Bytes>,
    /// Total payload bytes in `held`.
    pub(crate) held_bytes: usize,
    /// The authorization question the session waits for, boxed: most
    /// sessions never have one, and every session pays its slot.
    pub(crate) pending: Option<Box<PendingAuthorize>>,
    pub(crate) last_received: Instant,
    pub(crate) next_ping: Option<Instant>,
    /// The entry this session has in the hub's timer set, if any. It may be
    /// earlier than the session's true next deadline (timers are moved later
    /// lazily, when they fire).
    pub(crate) timer: Option<(Instant, TimerReason)>,
    /// Boxed: only a session in the middle of a long replay has one.
    pub(crate) backlog: Option<Box<Backlog>>,
}

impl<A> Session<A> {
    pub(crate) fn new(id: SessionId, now: Instant, phase: Phase<A>) -> Self {
        Self {
            id,
            phase,
            topics: BTreeSet::new(),
            queued_messages: 0,
            queued_bytes: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            pending: None,
            last_received: now,
            next_ping: None,
            timer: None,
            backlog: None,
        }
    }

    /// Whether incoming messages must wait (authentication or authorization
    /// outstanding).
    pub(crate) fn is_blocked(&self) -> bool {
        self.pending.is_some() || matches!(self.phase, Phase::Authenticating { .. })
    }

    pub(crate) fn auth(&self) -> Option<&A> {
        match &self.phase {
            Phase::Active { auth } => Some(auth),
            Phase::Authenticating { .. } => None,
        }
    }
}
