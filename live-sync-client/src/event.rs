//! What the live client reports to the application: messages, connection
//! changes and error frames.

use std::time::Duration;

use serde_json::Value;

use super::Position;

/// One message received on a subscribed topic (or sent to this session alone).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The payload, any JSON (`null` when the server sent none).
    pub data: Value,
    /// The publication's offset on a topic with history (`"offset"` of the
    /// frame); `None` on other topics. With the topic's epoch (the latest
    /// [`LiveEvent::Subscribed`]) it is the reader's [`Position`].
    pub offset: Option<u64>,
}

/// Why a connection ended or an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// TCP connect, the handshake or its timeout failed.
    ConnectFailed(String),
    /// The server answered the upgrade with an HTTP status (401, 403, 426, ...).
    Rejected {
        /// The status.
        status: u16,
    },
    /// The server closed the connection with a close frame.
    ClosedByServer {
        /// The close code (1001 going away, 1008 policy, 1009 too big, 4008
        /// slow consumer, ...); 1005 when the frame carried none.
        code: u16,
        /// The close reason text.
        reason: String,
    },
    /// The socket failed or ended without a close frame.
    ConnectionLost(String),
    /// Nothing arrived for two ping intervals.
    PingTimeout,
}

/// An event of a [`LiveClient`](super::LiveClient).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LiveEvent {
    /// A connection is up and every subscribed topic was sent to it again.
    Connected,
    /// The connection ended, or an attempt failed.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// The next attempt happens after `delay`; `attempt` counts consecutive
    /// failures (1 for the first retry).
    Reconnecting {
        /// Consecutive failures so far.
        attempt: u32,
        /// The jittered delay before the next attempt.
        delay: Duration,
    },
    /// A message from the server.
    Message(Message),
    /// The server answered a subscribe (with resume on, every subscribe on
    /// every connection asks it to): `position` is the topic's position now
    /// (epoch `""`, offset 0 for a topic without history); `recovered` says
    /// the publications after the position named follow, each once, before
    /// live ones. Like the connection events, dropped rather than waited for
    /// when the event buffer is full.
    Subscribed {
        /// The topic.
        topic: String,
        /// The topic's current position, as the server says.
        position: Position,
        /// Whether what was missed since the position named follows.
        recovered: bool,
    },
    /// The position named on a resubscribe is gone (the server restarted, or
    /// its history no longer reaches back to it): publications were missed.
    /// The application reloads the topic's state from its own source; the
    /// client goes on from `position`. Waited for, like a message.
    RecoveryFailed {
        /// The topic.
        topic: String,
        /// The position the client asked to resume from.
        since: Position,
        /// Where the topic stands now (the client reads on from here).
        position: Position,
    },
    /// An error frame (`{"topic":"error","data":{"code","message"}}`): a
    /// command was refused (for example `forbidden` on a subscribe); the
    /// connection stays open.
    ServerError {
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
    /// The client was closed; no further events follow.
    Closed,
}

/// The connection state, readable at any time with
/// [`LiveClient::state`](super::LiveClient::state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// An attempt is under way.
    Connecting,
    /// Connected and subscriptions sent.
    Connected,
    /// Waiting before the next attempt.
    Waiting,
    /// Closed for good.
    Closed,
}
