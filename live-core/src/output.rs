//! What the hub asks of its adapter: [`Action`]s (socket work), [`Event`]s
//! (application work) and the [`TimerReason`] of its next deadline.

use bytes::Bytes;

use crate::{CloseReason, OutFrame, SessionId};

/// Socket work for the adapter, drained with [`Hub::poll_action`](crate::Hub::poll_action)
/// and performed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `frame` to the session's socket. Once written, report it with
    /// [`Hub::handle_flushed`](crate::Hub::handle_flushed).
    Send {
        /// The session.
        id: SessionId,
        /// The frame. Its payload may be shared with other sessions.
        frame: OutFrame,
    },
    /// Write a close frame with this code and reason, then end the transport. The
    /// hub has already forgotten the session; nothing more will be sent to it.
    Close {
        /// The session.
        id: SessionId,
        /// The close code.
        code: u16,
        /// The close reason (at most 123 bytes, as RFC 6455 requires).
        reason: String,
    },
}

impl Action {
    /// The session this action concerns.
    pub fn id(&self) -> SessionId {
        match self {
            Action::Send { id, .. } | Action::Close { id, .. } => *id,
        }
    }
}

/// A built-in command a client can issue, as seen by an authorizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Command {
    /// `subscribe`.
    Subscribe,
    /// `unsubscribe`.
    Unsubscribe,
    /// `publish`.
    Publish,
}

impl Command {
    /// The command's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Subscribe => "subscribe",
            Command::Unsubscribe => "unsubscribe",
            Command::Publish => "publish",
        }
    }
}

/// A ticket identifying one asynchronous authorization question; give it back to
/// [`Hub::handle_authorize`](crate::Hub::handle_authorize).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthorizeTicket(pub(crate) u64);

impl AuthorizeTicket {
    /// The raw ticket number (unique within one hub).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// Application work, drained with [`Hub::poll_event`](crate::Hub::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<A> {
    /// A session opened with [`Hub::handle_open`](crate::Hub::handle_open) needs
    /// authenticating; answer with [`Hub::handle_auth`](crate::Hub::handle_auth)
    /// before the auth deadline.
    Authenticate {
        /// The session.
        id: SessionId,
    },
    /// A client command needs an authorization answer; answer with
    /// [`Hub::handle_authorize`](crate::Hub::handle_authorize). The session's later
    /// messages wait until it is answered, so their order is kept.
    Authorize {
        /// The ticket to answer with.
        ticket: AuthorizeTicket,
        /// The session asking.
        id: SessionId,
        /// What it asks to do.
        command: Command,
        /// On which topic.
        topic: String,
    },
    /// A message that is not a built-in command (mizu's `OnMessage`).
    Message {
        /// The sender.
        id: SessionId,
        /// The envelope's topic.
        topic: String,
        /// The envelope's `data`, raw JSON exactly as received (`null` when absent).
        data: Bytes,
    },
    /// A topic got its first local subscriber (only with
    /// [`HubConfig::backplane_events`](crate::HubConfig::backplane_events)): time to
    /// subscribe to its broker channel.
    TopicActive {
        /// The topic.
        topic: String,
    },
    /// A topic lost its last local subscriber (only with
    /// [`HubConfig::backplane_events`](crate::HubConfig::backplane_events)).
    TopicInactive {
        /// The topic.
        topic: String,
    },
    /// A client published and the hub fanned it out to local subscribers (only
    /// with [`HubConfig::backplane_events`](crate::HubConfig::backplane_events)):
    /// forward it to other nodes, which deliver it with
    /// [`Hub::publish`](crate::Hub::publish).
    Published {
        /// The publisher.
        id: SessionId,
        /// The topic.
        topic: String,
        /// The raw JSON data.
        data: Bytes,
    },
    /// A publication on a topic whose history the broker keeps
    /// ([`HubConfig::broker_history`](crate::HubConfig::broker_history)). Nothing
    /// was delivered yet: the broker numbers it, keeps it within `limits` and
    /// hands it to every node with interest in the topic, this one included,
    /// which delivers it with [`Hub::deliver_numbered`](crate::Hub::deliver_numbered).
    /// When the broker cannot take it, [`Hub::deliver_unnumbered`](crate::Hub::deliver_unnumbered)
    /// delivers it on this node alone.
    Append {
        /// The topic.
        topic: String,
        /// The raw JSON data.
        data: Bytes,
        /// What the topic's history keeps.
        limits: crate::HistoryLimits,
    },
    /// A subscribe asked for its position on a topic whose history the
    /// broker keeps: read the broker's epoch and latest offset of the topic
    /// and, when `after` is given, the publications after that offset, then
    /// answer with [`Hub::handle_history_read`](crate::Hub::handle_history_read).
    /// Asked after the subscription took effect (after the
    /// [`Event::TopicActive`] it may have caused), so a read started once the
    /// broker delivers the topic misses nothing.
    ReadHistory {
        /// Names the answer.
        request: u64,
        /// The topic.
        topic: String,
        /// Read the publications after this offset; `None`: the position only.
        after: Option<u64>,
        /// What the topic's history keeps.
        limits: crate::HistoryLimits,
    },
    /// A local session joined or left `topic` (only with
    /// [`HubConfig::broker_presence`](crate::HubConfig::broker_presence)):
    /// record it in the broker and tell the other nodes, which announce it
    /// with [`Hub::deliver_presence`](crate::Hub::deliver_presence).
    PresenceChange {
        /// The topic.
        topic: String,
        /// The session and its presence user.
        member: crate::PresenceMember,
        /// Joined (`true`) or left.
        joined: bool,
    },
    /// A `presence` query (only with
    /// [`HubConfig::broker_presence`](crate::HubConfig::broker_presence)):
    /// read the topic's members the broker holds and answer with
    /// [`Hub::handle_presence_members`](crate::Hub::handle_presence_members).
    PresenceQuery {
        /// Names the answer.
        request: u64,
        /// The topic.
        topic: String,
    },
    /// The session ended. Reported exactly once per session that was opened.
    Closed {
        /// The session.
        id: SessionId,
        /// Why.
        reason: CloseReason,
        /// The value authentication gave it, if it got that far.
        auth: Option<A>,
    },
}

/// What the deadline returned by [`Hub::poll_timeout`](crate::Hub::poll_timeout)
/// is for. Informational: [`Hub::handle_timeout`](crate::Hub::handle_timeout)
/// handles every due timer whatever its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerReason {
    /// A session's authentication deadline.
    AuthDeadline,
    /// An authorization question's deadline.
    AuthorizeDeadline,
    /// A session's idle deadline.
    Idle,
    /// A session's next heartbeat ping.
    Ping,
    /// The oldest publication of a topic's history reaches its TTL.
    HistoryExpiry,
}
