//! The [`Hub`]: the state machine itself. Its methods are split by kind over the
//! files of this module: inputs from the transport (`inbound.rs`), what client
//! messages mean (`messages.rs`), answers to events (`answers.rs`), server
//! commands (`commands.rs`), timers (`timers.rs`), and the shared machinery of
//! queues, topics and closing (`delivery.rs`).

mod answers;
mod backlog;
mod commands;
mod delivery;
mod inbound;
mod messages;
mod presence;
mod recovery;
mod remote;
mod timers;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use slab::Slab;

use crate::history::History;
use crate::presence::Watchers;
use crate::session::Session;
use crate::{
    Action, Authorizer, DefaultAuthorizer, Event, HistoryPolicy, HubConfig, IdGenerator, Metrics,
    SeededIds, SessionId, TimerReason,
};

/// The pub/sub hub: every session, its topics and its send queue, as a pure state
/// machine over `A`, the value authentication gives a session.
///
/// # Call order
///
/// The adapter owns the sockets and the clock and drives the hub from one task
/// (or under one lock):
///
/// 1. Run the handshake rules ([`crate::handshake`]) on the upgrade request.
/// 2. [`handle_open`](Hub::handle_open) (then answer [`Event::Authenticate`] with
///    [`handle_auth`](Hub::handle_auth)) or
///    [`handle_open_authenticated`](Hub::handle_open_authenticated) when the
///    upgrade request was already authenticated.
/// 3. Feed every frame read with [`handle_frame`](Hub::handle_frame), every write
///    completed with [`handle_flushed`](Hub::handle_flushed), and a transport that
///    ends without a close frame with
///    [`handle_transport_closed`](Hub::handle_transport_closed).
/// 4. Answer [`Event::Authorize`] with [`handle_authorize`](Hub::handle_authorize).
/// 5. Server code may call the commands ([`subscribe`](Hub::subscribe),
///    [`publish`](Hub::publish), [`send`](Hub::send), [`close`](Hub::close), ...)
///    at any time.
/// 6. After any of the above, drain [`poll_action`](Hub::poll_action) (socket work,
///    in order) and [`poll_event`](Hub::poll_event) (application work) until both
///    return `None`, then arm a timer for [`poll_timeout`](Hub::poll_timeout) and
///    call [`handle_timeout`](Hub::handle_timeout) when it expires (then drain
///    again).
/// 7. On shutdown call [`shutdown`](Hub::shutdown) and drain a last time.
///
/// Time is always the first argument after `self`; it must never go backwards.
/// Inputs naming a session that is already closed are ignored: a frame or a flush
/// report racing with a close is normal, not a mistake.
///
/// # Send queue accounting
///
/// Every [`Action::Send`] counts one message and its payload length against the
/// session's queue until the adapter reports it written with `handle_flushed`. A
/// session whose queue would pass [`Limits`](crate::Limits)'
/// `max_queued_messages` or `max_queued_bytes` is closed with 4008 and nothing more
/// is queued for it, so the adapter may use an unbounded channel per session.
pub struct Hub<A> {
    config: HubConfig,
    ids: Box<dyn IdGenerator>,
    authorizer: Box<dyn Authorizer<A>>,
    sessions: Slab<Session<A>>,
    /// Lookup only, never iterated, so its hash order cannot reach any output.
    by_id: HashMap<SessionId, usize>,
    /// Topic -> slab keys of its subscribers. A topic with no subscriber is removed.
    topics: BTreeMap<Arc<str>, BTreeSet<usize>>,
    /// (deadline, slab key, reason): the next deadline of every session that has one.
    timers: BTreeSet<(Instant, usize, TimerReason)>,
    /// Outstanding authorization tickets -> slab key of the asking session.
    tickets: BTreeMap<u64, usize>,
    next_ticket: u64,
    actions: VecDeque<Action>,
    events: VecDeque<Event<A>>,
    metrics: Metrics,
    shut_down: bool,
    /// Rings of the topics with history (see `recovery.rs`).
    history: History,
    /// Positions and waiting reads of topics whose history a broker keeps
    /// (see `remote.rs`).
    remote: remote::Remote,
    /// The embedder's choice of history topics, asked before the rules.
    history_policy: Option<Box<dyn HistoryPolicy>>,
    /// Sessions that hear joins and leaves, per topic.
    watchers: Watchers,
    /// Presence queries waiting for the broker's members: request ->
    /// (slab key, session, topic).
    presence_queries: BTreeMap<u64, (usize, SessionId, String)>,
    next_presence_query: u64,
    /// The latest instant an input brought: server commands that take no
    /// time (`publish`) stamp history entries with it.
    clock: Option<Instant>,
    /// Sessions holding a backlog (a paced replay; see `backlog.rs`).
    backlogs: usize,
}

impl<A: 'static> Hub<A> {
    /// A hub whose session ids come from [`SeededIds`] with this seed, with the
    /// [`DefaultAuthorizer`].
    pub fn new(config: HubConfig, seed: u64) -> Self {
        Self::with_id_generator(config, SeededIds::new(seed))
    }

    /// A hub whose session ids come from `ids`, with the [`DefaultAuthorizer`].
    pub fn with_id_generator(config: HubConfig, ids: impl IdGenerator + 'static) -> Self {
        Self {
            config,
            ids: Box::new(ids),
            authorizer: Box::new(DefaultAuthorizer),
            sessions: Slab::new(),
            by_id: HashMap::new(),
            topics: BTreeMap::new(),
            timers: BTreeSet::new(),
            tickets: BTreeMap::new(),
            next_ticket: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            metrics: Metrics::default(),
            shut_down: false,
            history: History::default(),
            remote: remote::Remote::default(),
            history_policy: None,
            watchers: Watchers::default(),
            presence_queries: BTreeMap::new(),
            next_presence_query: 0,
            clock: None,
            backlogs: 0,
        }
    }

    /// Replaces the authorization policy (builder form).
    pub fn with_authorizer(mut self, authorizer: impl Authorizer<A> + 'static) -> Self {
        self.set_authorizer(authorizer);
        self
    }

    /// Replaces the authorization policy. Questions already asked keep waiting for
    /// their answer.
    pub fn set_authorizer(&mut self, authorizer: impl Authorizer<A> + 'static) {
        self.authorizer = Box::new(authorizer);
    }

    /// Lets `policy` decide which topics keep history, before the
    /// configured rules (builder form).
    pub fn with_history_policy(mut self, policy: impl HistoryPolicy + 'static) -> Self {
        self.history_policy = Some(Box::new(policy));
        self
    }
}

impl<A> std::fmt::Debug for Hub<A> {
    /// A summary (counts and counters); sessions hold application values that need
    /// not be `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .field("metrics", &self.metrics())
            .field("pending_actions", &self.actions.len())
            .field("pending_events", &self.events.len())
            .field("shut_down", &self.shut_down)
            .finish_non_exhaustive()
    }
}

// ---- getters ----
impl<A> Hub<A> {
    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Whether this session is open (authenticating or active).
    pub fn contains(&self, id: SessionId) -> bool {
        self.by_id.contains_key(&id)
    }

    /// The authentication value of an active session (`None` while it is still
    /// authenticating, or when it is not open).
    pub fn auth(&self, id: SessionId) -> Option<&A> {
        self.session(id).and_then(|s| s.auth())
    }

    /// The topics a session is subscribed to, in byte order; `None` when it is not
    /// open.
    pub fn topics_of(&self, id: SessionId) -> Option<impl ExactSizeIterator<Item = &str> + '_> {
        self.session(id).map(|s| s.topics.iter().map(|t| &**t))
    }

    /// How many sessions are subscribed to `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, BTreeSet::len)
    }

    /// The sessions subscribed to `topic`, in a deterministic order.
    pub fn subscribers(&self, topic: &str) -> impl Iterator<Item = SessionId> + '_ {
        self.topics
            .get(topic)
            .into_iter()
            .flatten()
            .map(|&key| self.sessions[key].id)
    }

    /// How many sessions are open (authenticating or active).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The ids of all open sessions, in a deterministic order.
    pub fn sessions(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.iter().map(|(_, s)| s.id)
    }

    /// How many sessions hold a paced replay that moves on only as their
    /// flushes are reported. While this is not zero, a loop must hand in
    /// flush reports as they come, not only with its next other input: a
    /// replay that outlasts the traffic on its topic waits for nothing else.
    pub fn backlogged_sessions(&self) -> usize {
        self.backlogs
    }

    /// Messages and bytes handed to the adapter for this session and not yet
    /// reported flushed; `None` when it is not open.
    pub fn queued(&self, id: SessionId) -> Option<(usize, usize)> {
        self.session(id)
            .map(|s| (s.queued_messages, s.queued_bytes))
    }

    /// The counters.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.metrics;
        m.sessions = self.sessions.len();
        m.topics = self.topics.len();
        let usage = self.history.usage();
        m.history_topics = usage.topics;
        m.history_entries = usage.entries;
        m.history_bytes = usage.bytes;
        m.presence_watchers = self.watchers.count();
        m
    }

    /// The epoch and latest offset of a topic with a history running (it
    /// starts with the first publication or history subscribe).
    /// On a topic whose history a broker keeps: the latest position seen
    /// while it has subscribers.
    pub fn history_position(&self, topic: &str) -> Option<(&str, u64)> {
        self.history
            .position(topic)
            .or_else(|| self.remote.position(topic))
    }

    /// Whether [`shutdown`](Hub::shutdown) has run.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    fn session(&self, id: SessionId) -> Option<&Session<A>> {
        self.by_id.get(&id).map(|&key| &self.sessions[key])
    }
}

// ---- outputs ----
impl<A> Hub<A> {
    /// The next piece of socket work, in the order it must be done.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next piece of application work.
    pub fn poll_event(&mut self) -> Option<Event<A>> {
        self.events.pop_front()
    }

    /// The earliest deadline and what it is for; call
    /// [`handle_timeout`](Hub::handle_timeout) once it has passed. After
    /// `handle_timeout(now)`, the deadline returned is always later than `now`.
    pub fn poll_timeout(&self) -> Option<(Instant, TimerReason)> {
        let session = self.timers.first().map(|&(at, _, reason)| (at, reason));
        let history = self
            .history
            .next_expiry()
            .map(|at| (at, TimerReason::HistoryExpiry));
        match (session, history) {
            (Some(s), Some(h)) => Some(if h.0 < s.0 { h } else { s }),
            (s, h) => s.or(h),
        }
    }
}
