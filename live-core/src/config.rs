//! Configuration of a [`Hub`](crate::Hub): limits, timers and the built-in commands.
//!
//! Every field has a default matching the design notes, so `HubConfig::default()`
//! is a working server configuration.

use std::time::Duration;

use crate::HistoryRule;

/// Everything a [`Hub`](crate::Hub) can be tuned with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubConfig {
    /// Size limits per session.
    pub limits: Limits,
    /// Heartbeat, idle and deadline timers.
    pub timers: Timers,
    /// Which built-in commands the hub interprets itself.
    pub commands: BuiltinCommands,
    /// Whether messages that are not built-in commands are handed to the
    /// application as [`Event::Message`](crate::Event::Message) (mizu's
    /// `OnMessage`). When `false`, such a message earns the sender an
    /// `unknown_command` error frame instead. Default `true`.
    pub application_messages: bool,
    /// Whether the hub reports what a broker backplane needs:
    /// [`Event::TopicActive`](crate::Event::TopicActive) when a topic gets its
    /// first local subscriber, [`Event::TopicInactive`](crate::Event::TopicInactive)
    /// when it loses its last, and [`Event::Published`](crate::Event::Published)
    /// for every client publish (already fanned out locally). Default `false`.
    pub backplane_events: bool,
    /// Topics that keep a history of recent publications, first match wins:
    /// their publications carry an `offset`, and a subscribe naming `since`
    /// replays what was missed. Empty (default): no history, and publishing
    /// costs nothing more. An embedder's
    /// [`HistoryPolicy`](crate::HistoryPolicy) is asked before these rules.
    pub history: Vec<HistoryRule>,
    /// Whether a broker keeps the history of topics with one (`--broker`):
    /// their publications are not numbered here but handed out as
    /// [`Event::Append`](crate::Event::Append), and come back numbered to
    /// every node with [`Hub::deliver_numbered`](crate::Hub::deliver_numbered);
    /// a subscribe naming a position asks the broker with
    /// [`Event::ReadHistory`](crate::Event::ReadHistory). `sync:` topics keep
    /// their history on the node. Default `false`.
    pub broker_history: bool,
    /// Whether presence spans the nodes sharing a broker (`--broker`):
    /// local joins and leaves are reported as
    /// [`Event::PresenceChange`](crate::Event::PresenceChange), other nodes'
    /// come in with [`Hub::deliver_presence`](crate::Hub::deliver_presence),
    /// and a `presence` query waits for the broker's members
    /// ([`Event::PresenceQuery`](crate::Event::PresenceQuery)). `sync:`
    /// topics stay on the node. Default `false`.
    pub broker_presence: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            timers: Timers::default(),
            commands: BuiltinCommands::default(),
            application_messages: true,
            backplane_events: false,
            history: Vec::new(),
            broker_history: false,
            broker_presence: false,
        }
    }
}

/// Size limits. Exceeding one is the peer's fault: it becomes an error frame or a
/// close, never an `Err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted incoming data frame payload, in bytes. A bigger frame closes
    /// the session with 1009. Default 4 MiB.
    pub read_limit: usize,
    /// Most messages handed to the adapter and not yet reported flushed. One more
    /// closes the session with 4008 (slow consumer). Default 256.
    pub max_queued_messages: usize,
    /// Most bytes handed to the adapter and not yet reported flushed. A message
    /// that would go over it closes the session with 4008, unless the queue is
    /// empty (a single message is always accepted, so a large publish does not
    /// close an idle reader). Default 1 MiB.
    pub max_queued_bytes: usize,
    /// Longest accepted topic name, in bytes, for the envelope's topic and a
    /// command's target topic alike. Default 256.
    pub max_topic_len: usize,
    /// Most topics one session may be subscribed to. Default 1024.
    pub max_topics_per_session: usize,
    /// Most incoming messages held while a session waits for authentication or an
    /// asynchronous authorization answer. One more, or held payloads totalling more
    /// than `read_limit` bytes, closes it with 1008. Default 64.
    pub max_pending_inbound: usize,
    /// Most topics with a history running. Beyond it the ring published to
    /// least recently that nobody is subscribed to is dropped (its position
    /// is remembered: the topic's offsets go on in the same epoch, and a
    /// client further behind is told it missed what was dropped). With the
    /// rules' sizes this bounds history memory when a rule has no TTL.
    /// Default 100 000.
    pub max_history_topics: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            read_limit: 4 * 1024 * 1024,
            max_queued_messages: 256,
            max_queued_bytes: 1024 * 1024,
            max_topic_len: 256,
            max_topics_per_session: 1024,
            max_pending_inbound: 64,
            max_history_topics: 100_000,
        }
    }
}

/// Timers. `None` turns the corresponding timer off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timers {
    /// Interval between pings the hub sends to each active session. Default 25 s.
    pub ping_interval: Option<Duration>,
    /// A session from which nothing (no frame of any kind) arrived for this long is
    /// closed with 4000. Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// A session opened with [`Hub::handle_open`](crate::Hub::handle_open) that is
    /// not answered by [`Hub::handle_auth`](crate::Hub::handle_auth) within this
    /// time is closed with 1008. Default 10 s.
    pub auth_timeout: Option<Duration>,
    /// An [`Event::Authorize`](crate::Event::Authorize) not answered within this
    /// time counts as a denial (`authorize_timeout` error frame). Default 10 s.
    pub authorize_timeout: Option<Duration>,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            ping_interval: Some(Duration::from_secs(25)),
            idle_timeout: Some(Duration::from_secs(60)),
            auth_timeout: Some(Duration::from_secs(10)),
            authorize_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// Which built-in commands the hub interprets. A command that is turned off is an
/// ordinary message: it goes to the application like any other topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuiltinCommands {
    /// `{"topic":"subscribe","data":{"topic":T}}`. Default on.
    pub subscribe: bool,
    /// `{"topic":"unsubscribe","data":{"topic":T}}`. Default on.
    pub unsubscribe: bool,
    /// `{"topic":"publish","data":{"topic":T,"data":any}}`. Default on.
    pub publish: bool,
    /// `{"topic":"presence","data":{"topic":T}}`: who is subscribed to `T`,
    /// for a session allowed to subscribe to it. Default on.
    pub presence: bool,
}

impl Default for BuiltinCommands {
    fn default() -> Self {
        Self {
            subscribe: true,
            unsubscribe: true,
            publish: true,
            presence: true,
        }
    }
}

impl BuiltinCommands {
    /// All built-in commands off: every message goes to the application.
    pub fn none() -> Self {
        Self {
            subscribe: false,
            unsubscribe: false,
            publish: false,
            presence: false,
        }
    }
}
