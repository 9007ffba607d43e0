//! Deterministic simulation of the whole server: one [`ServerCore`] (hub and
//! engine together) driven the way the loops around it drive it, with
//!
//! - live clients opening sessions, subscribing, unsubscribing and
//!   publishing on a few topics, sending application messages and `_sync`
//!   requests over the WebSocket envelope, closing, vanishing (transport
//!   closed), committing peer faults; some are slow consumers that stop
//!   reporting flushes (their queue overflows), some are mute (they never
//!   answer pings and are closed as idle);
//! - sync clients (`sync_core::Replica`) pushing and pulling over HTTP
//!   ([`ServerCore::handle_http_sync`]) or over `_sync`, each with a session
//!   subscribed to `sync:<scope>` whose pokes it reacts to;
//! - a store (a [`MemoryStore`] behind a wrapper) whose jobs complete after a
//!   simulated delay, and whose persists sometimes fail, some as unavailable;
//!   on a shared store some land but are reported unavailable, and the store
//!   then refuses the next batch on their scopes as stale until they are
//!   read (a shared store's version check);
//! - crashes: the core and everything in flight is dropped (the batch being
//!   written may or may not have landed), a new core is built from the
//!   store's `load`, and clients reconnect;
//! - a broker: interest commands and publishes go to it, another node's
//!   publishes come back from it, it goes away (losing what is sent
//!   meanwhile) and is restored;
//! - in some runs the broker keeps [`FEED`]'s history (`broker_history`):
//!   publications on it go to the broker, which numbers them and hands them
//!   back in order after a delay, and history reads are answered later
//!   still, while live ones keep coming (such runs have no broker outage:
//!   one would lose numbered publications on their way, a gap the live
//!   subscribers would see);
//! - recovering clients: live clients subscribed to the history topic
//!   [`FEED`] that reconnect after every end of their session and subscribe
//!   again naming the last position they read; every publication they read
//!   must carry the offset right after the previous one (no gap, no
//!   duplicate), and a `recovered:false` reply resets their position;
//! - server commands (publish, close, trim), store notices (reloads), time
//!   jumps to the core's next wake-up (heartbeats, idle timeouts), and a
//!   graceful shutdown at the end.
//!
//! Invariants are checked on every output and after every step; a broken one
//! panics with what broke (the caller prints the seed and [`Sim::trace`]).
//! Every choice comes from [`Decisions`]: a seeded generator, or the bytes
//! of a fuzz input.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use live_core::{CloseReason, Frame, HistoryLimits, HistoryRule, OutFrame, PeerFault, SessionId};
use serde_json::{Value, json};
use sync_core::handler::parse_ws_response;
use sync_core::store::{Batch, ScopeRecords};
use sync_core::{
    KvApp, MemoryStore, Mutation, Operation, Recovered, Replica, ReplicaConfig, RequestId,
    SnapshotRequest, Store, SyncRequest, Timestamp,
};

use crate::{
    AllowAll, BackplaneCommand, Body, CoreConfig, HttpSync, Output, PersistJob, ReloadJob,
    ServerCore, Ticket, jobs,
};

/// Sync clients alternate between these scopes.
pub const SCOPES: [&str; 2] = ["room", "hall"];
/// The live topics clients subscribe and publish to.
pub const TOPICS: [&str; 3] = ["chat", "news", "game"];
/// The topic with history that recovering clients follow.
pub const FEED: &str = "feed";
/// What its history keeps: fewer publications than the queue bound, so a
/// replay never overflows a fresh session.
const FEED_HISTORY: usize = 3;
const FEED_TTL: Duration = Duration::from_millis(3000);

const WALL_BASE: u64 = 1_795_328_895_000;
/// The hub's queue bound in the simulation: small, so slow consumers
/// overflow quickly, yet far above what a consumer that flushes every step
/// ever has queued.
const QUEUE: usize = 16;
const PING: Duration = Duration::from_millis(500);
const IDLE: Duration = Duration::from_millis(2000);

type Core = ServerCore<String, AllowAll, KvApp>;

pub use sync_core::testing::Decisions;

/// A deliberate fault in the simulated loops, to prove the invariants catch
/// what they claim to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sabotage {
    /// None: the loops behave.
    #[default]
    None,
    /// The store reports every batch persisted without writing it.
    LyingStore,
    /// One consumer that does read stops reading (and reporting flushes).
    StuckConsumer,
}

// ---- the store ----

/// Why the simulated store failed a persist.
#[derive(Debug, Clone, thiserror::Error)]
#[error("simulated store failure (unavailable: {unavailable}, stale: {stale:?})")]
struct SimFailure {
    unavailable: bool,
    /// Refused as if another node had written these scopes first.
    stale: Vec<String>,
}

/// What the durable store holds, tracked from every batch actually written.
#[derive(Debug, Default)]
struct Ledger {
    /// Per client: the last sequence durably recorded.
    seq: BTreeMap<String, u64>,
    /// Per scope: the durable head.
    head: BTreeMap<String, u64>,
    /// Per (scope, key): how many `incr` were applied.
    incr_applied: BTreeMap<(String, String), i64>,
    /// Which scope each sync client writes.
    scope_of: BTreeMap<String, String>,
    /// (scope, id) recorded for mutations without a client id.
    ids: BTreeSet<(String, String)>,
    /// Every mutation a sync client made, by (client, seq).
    created: BTreeMap<(String, u64), Mutation>,
}

impl Ledger {
    fn apply(&mut self, batch: &Batch) {
        for e in &batch.changes {
            let head = self.head.entry(e.change.scope.clone()).or_default();
            assert_eq!(
                e.change.cursor,
                *head + 1,
                "durable cursors are dense per scope ({})",
                e.change.scope
            );
            *head = e.change.cursor;
        }
        for r in &batch.ids {
            assert!(
                self.ids.insert((r.scope.clone(), r.id.clone())),
                "mutation id {} applied twice",
                r.id
            );
            if r.result.ok {
                *self
                    .incr_applied
                    .entry((r.scope.clone(), "r".into()))
                    .or_default() += 1;
            }
        }
        for r in &batch.clients {
            let prev = self.seq.get(&r.client_id).copied().unwrap_or(0);
            assert_eq!(
                r.seq,
                prev + 1,
                "{}: sequences recorded in order, once, without gaps",
                r.client_id
            );
            self.seq.insert(r.client_id.clone(), r.seq);
            assert_eq!(
                Some(&r.scope),
                self.scope_of.get(&r.client_id),
                "recorded in its own scope"
            );
            let m = &self.created[&(r.client_id.clone(), r.seq)];
            if r.result.ok && m.name == "incr" {
                let key = m.args.as_ref().and_then(|a| a["key"].as_str());
                let key = key.unwrap_or_default().to_owned();
                *self.incr_applied.entry((r.scope.clone(), key)).or_default() += 1;
            }
        }
    }
}

/// A [`MemoryStore`] with injected failures (some as unavailable) and a
/// ledger of what it really holds.
#[derive(Debug, Default)]
struct SimStore {
    inner: MemoryStore,
    /// The next persist fails; `Some(true)`: as unavailable.
    fail_next: Option<bool>,
    /// The next persist is refused as stale (on a shared store).
    stale_next: bool,
    /// The next persist lands but reports unavailable, as a batch whose
    /// connection broke during `COMMIT` does (on a shared store).
    land_next: bool,
    /// Scopes written by a batch that landed unanswered, or whose records
    /// the engine did not take: as a shared store does, the next batch on
    /// one is refused as stale until the scope is read.
    behind: BTreeSet<String>,
    lie: bool,
    ledger: Ledger,
}

impl Store for SimStore {
    type Error = SimFailure;

    fn persist(&mut self, batch: &Batch) -> Result<(), SimFailure> {
        if let Some(unavailable) = self.fail_next.take() {
            return Err(SimFailure {
                unavailable,
                stale: Vec::new(),
            });
        }
        let scopes =
            || (batch.written_scopes().into_iter()).chain(batch.verify.iter().map(String::as_str));
        let behind: Vec<String> = scopes()
            .filter(|s| self.behind.contains(*s))
            .map(str::to_owned)
            .collect();
        if std::mem::take(&mut self.stale_next) || !behind.is_empty() {
            let stale = scopes().map(str::to_owned).collect();
            return Err(SimFailure {
                unavailable: false,
                stale,
            });
        }
        if self.lie {
            return Ok(());
        }
        self.inner.persist(batch).expect("the memory store writes");
        self.ledger.apply(batch);
        if std::mem::take(&mut self.land_next) {
            let written = batch.written_scopes().into_iter().map(str::to_owned);
            self.behind.extend(written);
            return Err(SimFailure {
                unavailable: true,
                stale: Vec::new(),
            });
        }
        Ok(())
    }

    fn load(&mut self) -> Result<Recovered, SimFailure> {
        self.behind.clear();
        Ok(self.inner.load().expect("the memory store loads"))
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, SimFailure> {
        self.behind.remove(scope);
        Ok(self
            .inner
            .load_scope(scope)
            .expect("the memory store loads"))
    }

    fn forget_scope(&mut self, scope: &str) {
        self.behind.insert(scope.to_owned());
    }

    fn is_unavailable(error: &SimFailure) -> bool {
        error.unavailable
    }

    fn stale_scopes(error: &SimFailure) -> Vec<String> {
        error.stale.clone()
    }
}

// ---- clients ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Flushes every step, answers pings.
    Normal,
    /// Never reports a flush: its queue overflows.
    Slow,
    /// Flushes but never answers pings nor sends anything: idle timeout.
    Mute,
    /// Flushes, answers pings, follows [`FEED`] and resumes it from its
    /// last read position after every end of its session.
    Recovering,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Live(Behaviour),
    /// The connection of sync client `.0`.
    Sync(usize),
}

/// A frame written to a connection, as the client will read it.
#[derive(Debug)]
enum Received {
    Ping(Bytes),
    Reply {
        to: Option<(usize, RequestId)>,
        status: u16,
        body: Bytes,
    },
    Poke(u64),
    /// The reply to a subscribe naming a position on [`FEED`].
    Subscribed {
        epoch: String,
        offset: u64,
        recovered: bool,
    },
    /// A publication on [`FEED`] to a recovering client, with its offset.
    Feed(u64),
    Other,
}

/// What a `_sync` request sent on a connection waits for.
#[derive(Debug)]
struct Waiting {
    replica: Option<(usize, RequestId)>,
    op: Operation,
    push: Vec<Mutation>,
}

#[derive(Debug)]
struct Conn {
    name: String,
    role: Role,
    sid: Option<SessionId>,
    /// The topics it is subscribed to (the model).
    subs: BTreeSet<String>,
    /// Subscribed before a crash: subscribed again on reconnect.
    resubscribe: BTreeSet<String>,
    /// Written to the socket, not yet read (and reported flushed), with
    /// when it was written.
    inbox: VecDeque<(OutFrame, Received, u64)>,
    /// `_sync` requests not answered, by rid.
    rids: BTreeMap<String, Waiting>,
    next_rid: u64,
    /// When to open a session again (`None`: not reconnecting).
    reconnect_at: Option<u64>,
    /// Ended for good.
    retired: bool,
    /// A recovering client's position on [`FEED`] (epoch, last offset read).
    feed: Option<(String, u64)>,
}

#[derive(Debug)]
struct SyncClient {
    name: String,
    scope: String,
    replica: Replica<KvApp>,
    /// Requests over `_sync` instead of HTTP.
    ws: bool,
    conn: usize,
}

/// Where an HTTP request's answer goes.
#[derive(Debug)]
struct HttpRoute {
    replica: usize,
    id: RequestId,
    op: Operation,
    push: Vec<Mutation>,
}

#[derive(Debug)]
enum Job {
    Persist(PersistJob),
    Reload(ReloadJob),
}

#[derive(Debug, Default)]
struct Broker {
    attached: bool,
    up: bool,
    restore_at: Option<u64>,
    /// The topics the broker delivers to this node.
    interest: BTreeSet<String>,
    /// The broker keeps [`FEED`]'s history.
    history: bool,
    /// [`FEED`]'s latest offset in the broker.
    feed_last: u64,
    /// [`FEED`]'s kept publications: offset, when (ms), data.
    feed: VecDeque<(u64, u64, Bytes)>,
    /// Numbered publications on their way to this node, in order.
    numbered: VecDeque<(u64, Bytes)>,
    /// History reads waiting for their answer: request, after.
    reads: VecDeque<(u64, Option<u64>)>,
}

/// The epoch of [`FEED`]'s history in the simulated broker, which never
/// loses it.
const BROKER_EPOCH: &str = "0000000000b20ce5";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum AckKey {
    Seq(usize, u64),
    Id(usize, u64),
}

/// How often each thing happened, to check the simulation exercises it.
#[derive(Debug, Default, Clone)]
#[allow(missing_docs)]
pub struct Counters {
    pub steps: u64,
    pub mutations: u64,
    pub acked_http: u64,
    pub acked_ws: u64,
    pub replays: u64,
    pub crashes: u64,
    /// Crashes after a batch was written but before it was reported.
    pub unacknowledged_commits: u64,
    /// Batches that landed but were reported unavailable (a shared store).
    pub landed_unanswered: u64,
    pub persist_failures: u64,
    pub unavailable: u64,
    pub answers_503: u64,
    pub slow_closes: u64,
    pub idle_closes: u64,
    pub peer_faults: u64,
    pub vanished: u64,
    pub kicks: u64,
    pub publishes: u64,
    pub deliveries: u64,
    pub pokes: u64,
    pub broker_outages: u64,
    pub broker_in: u64,
    pub broker_lost: u64,
    pub broker_out: u64,
    pub trims: u64,
    pub reloads: u64,
    pub time_jumps: u64,
    pub pings: u64,
    pub resets: u64,
    pub reconnects: u64,
    pub ws_syncs: u64,
    pub http_syncs: u64,
    /// `subscribed` replies with `recovered:true` read.
    pub recoveries: u64,
    /// `subscribed` replies with `recovered:false` read.
    pub recovery_misses: u64,
    /// Publications on the feed read by recovering clients.
    pub feed_reads: u64,
    /// Numbered publications the broker handed to the node.
    pub broker_numbered: u64,
    /// History reads the broker answered.
    pub broker_reads: u64,
    /// `recovered:true` replies read while the broker keeps the history.
    pub broker_recoveries: u64,
}

impl Counters {
    /// Adds `o` to these counters.
    pub fn add(&mut self, o: &Counters) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        sum!(
            steps,
            mutations,
            acked_http,
            acked_ws,
            replays,
            crashes,
            unacknowledged_commits,
            landed_unanswered,
            persist_failures,
            unavailable,
            answers_503,
            slow_closes,
            idle_closes,
            peer_faults,
            vanished,
            kicks,
            publishes,
            deliveries,
            pokes,
            broker_outages,
            broker_in,
            broker_lost,
            broker_out,
            trims,
            reloads,
            time_jumps,
            pings,
            resets,
            reconnects,
            ws_syncs,
            http_syncs,
            broker_numbered,
            broker_reads,
            broker_recoveries,
            recoveries,
            recovery_misses,
            feed_reads
        );
    }
}

/// The simulated server, its store, broker and clients.
pub struct Sim {
    rng: Decisions,
    base: Instant,
    /// Simulated milliseconds since the start.
    pub now_ms: u64,
    faults: bool,
    sabotage: Sabotage,
    config: CoreConfig,
    store: SimStore,
    /// The server, `None` while crashed.
    core: Option<Core>,
    down_until: u64,
    job: Option<(u64, Job)>,
    conns: Vec<Conn>,
    by_sid: BTreeMap<SessionId, usize>,
    replicas: Vec<SyncClient>,
    http: BTreeMap<RequestId, HttpRoute>,
    broker: Broker,
    /// Trims asked of the current core, and those it reported done.
    tickets: BTreeSet<Ticket>,
    done: BTreeSet<Ticket>,
    next_n: u64,
    /// Publishes of the current operation: (connection, number).
    expected: Vec<(usize, u64)>,
    delivered: BTreeSet<(usize, u64)>,
    closed_now: BTreeSet<usize>,
    /// Application messages to answer once the outputs are drained.
    hooks: VecDeque<(usize, SessionId)>,
    acked: BTreeMap<AckKey, (bool, u64, Option<String>)>,
    raw_names: Vec<String>,
    stopped: bool,
    /// The last few hundred notable events, for failure reports.
    pub trace: Vec<String>,
    /// How often each thing happened.
    pub counters: Counters,
}

fn app() -> KvApp {
    sync_core::testing::app()
}

impl Sim {
    /// A simulation whose choices come from `rng`, with simulated time
    /// starting at `base`.
    pub fn new(rng: Decisions, base: Instant) -> Self {
        Self::with_sabotage(rng, base, Sabotage::None)
    }

    /// As [`Sim::new`], with a deliberate fault in the simulated loops.
    pub fn with_sabotage(mut rng: Decisions, base: Instant, sabotage: Sabotage) -> Self {
        let mut config = CoreConfig::with_seed(rng.number());
        config.hub.limits.max_queued_messages = QUEUE;
        config.hub.timers.ping_interval = Some(PING);
        config.hub.timers.idle_timeout = Some(IDLE);
        config.hub.backplane_events = true;
        let broker_history = rng.chance(0.4);
        config.hub.broker_history = broker_history;
        config.hub.history = vec![HistoryRule::new(
            FEED,
            HistoryLimits::new(FEED_HISTORY, Some(FEED_TTL)),
        )];
        config.engine.keep_changes = rng.chance(0.3).then(|| 2 + rng.below(12));
        // As a node on a store other nodes share: pushes kept to push again,
        // scopes read before their first pull, reloads kept off scopes with
        // work of their own, and (refused as stale now and then) pushes
        // waiting for locking reads.
        config.shared_store = rng.chance(0.3);
        let mut store = SimStore {
            lie: sabotage == Sabotage::LyingStore,
            ..SimStore::default()
        };
        let core = Core::new(
            base,
            Timestamp::from_millis(WALL_BASE),
            config.clone(),
            AllowAll,
            app(),
            store.load().expect("load"),
        )
        .expect("recover");
        let mut sim = Sim {
            rng,
            base,
            now_ms: 0,
            faults: true,
            sabotage,
            config,
            store,
            core: Some(core),
            down_until: 0,
            job: None,
            conns: Vec::new(),
            by_sid: BTreeMap::new(),
            replicas: Vec::new(),
            http: BTreeMap::new(),
            broker: Broker::default(),
            tickets: BTreeSet::new(),
            done: BTreeSet::new(),
            next_n: 0,
            expected: Vec::new(),
            delivered: BTreeSet::new(),
            closed_now: BTreeSet::new(),
            hooks: VecDeque::new(),
            acked: BTreeMap::new(),
            raw_names: Vec::new(),
            stopped: false,
            trace: Vec::new(),
            counters: Counters::default(),
        };
        let replicas = 2 + sim.rng.below(3) as usize;
        for j in 0..replicas {
            sim.add_replica(j);
        }
        for _ in 0..2 + sim.rng.below(4) {
            sim.spawn_live();
        }
        sim.broker.history = broker_history;
        if broker_history || sim.rng.chance(0.8) {
            sim.broker.attached = true;
            sim.broker.up = true;
            sim.with_core(|c, now| c.handle_broker_attached(now));
        }
        sim
    }

    fn add_replica(&mut self, j: usize) {
        let name = format!("c{j}");
        let scope = SCOPES[j % 2].to_owned();
        let mut cfg = ReplicaConfig::new(scope.clone(), name.clone());
        cfg.seed = self.rng.number();
        cfg.push_batch = 1 + self.rng.below(5) as usize;
        cfg.pull_limit = 1 + self.rng.below(6);
        cfg.poll_interval = Duration::from_millis(2000);
        cfg.request_timeout = Duration::from_millis(1000);
        cfg.backoff_base = Duration::from_millis(20);
        cfg.backoff_max = Duration::from_millis(500);
        let replica = Replica::new(app(), cfg, self.now());
        let ws = self.rng.chance(0.5);
        self.store
            .ledger
            .scope_of
            .insert(name.clone(), scope.clone());
        let conn = self.conns.len();
        self.conns.push(Conn::new(name.clone(), Role::Sync(j)));
        self.replicas.push(SyncClient {
            name,
            scope,
            replica,
            ws,
            conn,
        });
        self.open(conn);
    }

    fn spawn_live(&mut self) {
        let behaviour = match self.rng.below(10) {
            0 | 1 => Behaviour::Slow,
            2 => Behaviour::Mute,
            3 | 4 => Behaviour::Recovering,
            _ => Behaviour::Normal,
        };
        let c = self.conns.len();
        let name = format!("u{c}");
        self.conns.push(Conn::new(name, Role::Live(behaviour)));
        self.open(c);
        if behaviour == Behaviour::Slow {
            // Slow consumers listen to everything, so they overflow soon.
            for topic in TOPICS {
                self.subscribe(c, topic);
            }
        }
    }

    // ---- time and plumbing ----

    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.now_ms)
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_millis() as u64
    }

    fn log(&mut self, s: String) {
        if self.trace.len() > 400 {
            self.trace.drain(..100);
        }
        self.trace.push(format!("t={} {s}", self.now_ms));
    }

    fn fresh_n(&mut self) -> u64 {
        self.next_n += 1;
        self.next_n
    }

    /// Calls the core (if up), then carries out everything it asks.
    fn with_core<R>(&mut self, f: impl FnOnce(&mut Core, Instant) -> R) -> Option<R> {
        let now = self.now();
        let core = self.core.as_mut()?;
        let r = f(core, now);
        self.drain();
        Some(r)
    }

    fn drain(&mut self) {
        loop {
            while let Some(out) = self.core.as_mut().and_then(Core::poll_output) {
                assert!(!self.stopped, "output after Stopped: {out:?}");
                self.on_output(out);
            }
            let Some((c, sid)) = self.hooks.pop_front() else {
                break;
            };
            // The application answers a message with a message of its own.
            if self.conns[c].sid == Some(sid) {
                let n = self.fresh_n();
                self.expected.push((c, n));
                let data = json!({ "n": n }).to_string();
                let core = self.core.as_mut().expect("up");
                core.send(sid, "echo", data.as_bytes())
                    .expect("send to an open session");
            }
        }
        // Every publish reached every subscriber that was not closed
        // meanwhile (a publication the broker numbers comes back later).
        for (c, n) in std::mem::take(&mut self.expected) {
            assert!(
                self.delivered.contains(&(c, n)) || self.closed_now.contains(&c),
                "{}: publish {n} not delivered to a subscriber",
                self.conns[c].name
            );
        }
        self.delivered.clear();
        self.closed_now.clear();
    }

    fn on_output(&mut self, out: Output<String>) {
        match out {
            Output::Send { id, frame } => self.on_send(id, frame),
            Output::Close { id, code, reason } => {
                let c = *self
                    .by_sid
                    .get(&id)
                    .unwrap_or_else(|| panic!("close of a session not open: {id:?}"));
                self.log(format!("close {} {code} {reason}", self.conns[c].name));
                if code == live_core::codes::SLOW_CONSUMER {
                    self.counters.slow_closes += 1;
                    assert!(
                        self.conns[c].role == Role::Live(Behaviour::Slow),
                        "{}: a consumer that flushes was closed as slow",
                        self.conns[c].name
                    );
                }
                if code == live_core::codes::IDLE_TIMEOUT {
                    self.counters.idle_closes += 1;
                    assert!(
                        self.conns[c].role == Role::Live(Behaviour::Mute)
                            || self.conns[c].role == Role::Live(Behaviour::Slow),
                        "{}: a client answering pings was closed as idle",
                        self.conns[c].name
                    );
                }
            }
            Output::Closed { id, reason, user } => {
                let c = self
                    .by_sid
                    .remove(&id)
                    .unwrap_or_else(|| panic!("closed twice or never open: {id:?}"));
                assert_eq!(user.as_ref(), Some(&self.conns[c].name), "closed's user");
                self.log(format!("closed {} {reason:?}", self.conns[c].name));
                self.closed_now.insert(c);
                self.session_ended(c, false);
                if matches!(reason, CloseReason::Shutdown) {
                    assert!(self.core.as_ref().is_some_and(|c| c.hub().is_shut_down()));
                }
            }
            Output::Message { id, topic, data } => {
                let c = self.by_sid[&id];
                assert_eq!(topic, "hello", "only hello reaches the application");
                assert_eq!(&data[..], br#"{"x":1}"#);
                self.hooks.push_back((c, id));
            }
            Output::Answer { request, response } => {
                let route = self
                    .http
                    .remove(&request)
                    .unwrap_or_else(|| panic!("answer to {request:?}: unknown or answered twice"));
                self.check_answer(
                    route.op,
                    &route.push,
                    response.status,
                    &response.body,
                    false,
                );
                if self.faults && self.rng.chance(0.03) {
                    return; // the answer is lost on the way: the client times out
                }
                let now = self.now();
                let r = &mut self.replicas[route.replica];
                r.replica
                    .handle_response(now, route.id, response.status, &response.body);
            }
            Output::Persist(job) => {
                assert!(self.job.is_none(), "a second job while one is out");
                let due = self.now_ms + self.rng.below(40);
                self.job = Some((due, Job::Persist(job)));
            }
            Output::Reload(job) => {
                assert!(self.job.is_none(), "a second job while one is out");
                let due = self.now_ms + self.rng.below(20);
                self.job = Some((due, Job::Reload(job)));
            }
            Output::Broker(cmd) => self.on_broker(cmd),
            Output::Done { ticket, result } => {
                assert!(self.done.insert(ticket), "done twice: {ticket:?}");
                self.log(format!("trim {ticket:?} done: {result:?}"));
            }
            Output::Notice(n) => self.log(format!("notice: {n}")),
            Output::Stopped => {
                assert!(!self.stopped, "stopped twice");
                self.stopped = true;
            }
            Output::Refresh { .. } => panic!("token refresh is off in the simulation"),
        }
    }

    fn on_send(&mut self, id: SessionId, frame: OutFrame) {
        let c = *self
            .by_sid
            .get(&id)
            .unwrap_or_else(|| panic!("send to a session not open: {id:?}"));
        let received = match &frame {
            OutFrame::Ping(p) => {
                self.counters.pings += 1;
                Received::Ping(p.clone())
            }
            OutFrame::Pong(_) => Received::Other,
            OutFrame::Text(text) => self.on_text(c, text),
        };
        let now_ms = self.now_ms;
        self.conns[c].inbox.push_back((frame, received, now_ms));
    }

    fn on_text(&mut self, c: usize, text: &Bytes) -> Received {
        let v: Value = serde_json::from_slice(text).expect("frames are JSON");
        let topic = v["topic"].as_str().expect("a topic").to_owned();
        let data = &v["data"];
        if topic == "_sync" {
            let (rid, response) = parse_ws_response(data).expect("a well-formed _sync reply");
            let key = rid.to_string();
            let waiting = self.conns[c].rids.remove(&key).unwrap_or_else(|| {
                panic!(
                    "{}: _sync reply to rid {key}: unknown or answered twice",
                    self.conns[c].name
                )
            });
            self.check_answer(
                waiting.op,
                &waiting.push,
                response.status,
                &response.body,
                true,
            );
            return Received::Reply {
                to: waiting.replica,
                status: response.status,
                body: response.body,
            };
        }
        if let Some(scope) = topic.strip_prefix("sync:") {
            let cursor = data["cursor"].as_u64().expect("a poke's cursor");
            let head = self.head(scope);
            assert!(
                cursor <= head,
                "poke {scope}@{cursor} before durable (head {head})"
            );
            assert!(
                self.conns[c].subs.contains(&topic),
                "poke to a non-subscriber"
            );
            self.counters.pokes += 1;
            return Received::Poke(cursor);
        }
        if topic == "error" {
            return Received::Other;
        }
        if topic == "subscribed" {
            assert_eq!(
                data["topic"], FEED,
                "only the feed is subscribed with a position"
            );
            return Received::Subscribed {
                epoch: data["epoch"].as_str().expect("an epoch").to_owned(),
                offset: data["offset"].as_u64().expect("an offset"),
                recovered: data["recovered"].as_bool().expect("recovered"),
            };
        }
        let n = data["n"].as_u64().expect("publishes carry their number");
        if topic == FEED {
            let offset = v["offset"]
                .as_u64()
                .expect("feed publications carry offsets");
            if self.conns[c].role == Role::Live(Behaviour::Recovering) {
                assert!(
                    self.conns[c].subs.contains(FEED),
                    "feed to a non-subscriber"
                );
                // A replay may send again what a closed session never read:
                // no gap and no duplicate are checked where it is read.
                self.delivered.insert((c, n));
                self.counters.deliveries += 1;
                return Received::Feed(offset);
            }
        }
        assert!(
            topic == "echo" || self.conns[c].subs.contains(&topic),
            "{}: publish on {topic} without a subscription",
            self.conns[c].name
        );
        assert!(self.delivered.insert((c, n)), "publish {n} delivered twice");
        self.counters.deliveries += 1;
        Received::Other
    }

    fn head(&self, scope: &str) -> u64 {
        self.store.ledger.head.get(scope).copied().unwrap_or(0)
    }

    /// Checks an answer to a sync request: nothing acknowledged or served
    /// before it is durable, replays return the original results.
    fn check_answer(
        &mut self,
        op: Operation,
        push: &[Mutation],
        status: u16,
        body: &[u8],
        ws: bool,
    ) {
        if status == 503 {
            self.counters.answers_503 += 1;
        }
        if status != 200 {
            return;
        }
        let v: Value = serde_json::from_slice(body).expect("a JSON answer");
        match op {
            Operation::Push => {
                let results = v["results"].as_array().expect("results");
                assert_eq!(results.len(), push.len(), "one result per mutation");
                for (m, r) in push.iter().zip(results) {
                    self.check_ack(m, r, ws);
                }
            }
            Operation::Pull => {
                let scope = v["changes"]
                    .as_array()
                    .and_then(|c| c.first())
                    .and_then(|c| c["scope"].as_str())
                    .map(str::to_owned);
                for ch in v["changes"].as_array().expect("changes") {
                    let scope = ch["scope"].as_str().expect("scope");
                    let cursor = ch["cursor"].as_u64().expect("cursor");
                    assert!(
                        cursor <= self.head(scope),
                        "pull served {cursor} before durable"
                    );
                }
                if let Some(scope) = scope {
                    let next = v["next_cursor"].as_u64().expect("next_cursor");
                    assert!(next <= self.head(&scope), "next_cursor beyond durable");
                }
            }
            _ => {
                if let Some(cursor) = v["cursor"].as_u64() {
                    let max = self.store.ledger.head.values().copied().max().unwrap_or(0);
                    assert!(cursor <= max, "snapshot cursor beyond anything durable");
                }
            }
        }
    }

    fn check_ack(&mut self, m: &Mutation, r: &Value, ws: bool) {
        let code = r["code"].as_str().map(str::to_owned);
        let transient = code.as_deref() == Some("internal_error");
        let gap = code.as_deref() == Some("conflict")
            && r["error"].as_str().unwrap_or("").contains("gap");
        if transient || gap {
            return;
        }
        let ledger = &self.store.ledger;
        let key = match (&m.client_id, m.seq) {
            (Some(client), Some(seq)) => {
                let durable = ledger.seq.get(client).copied().unwrap_or(0);
                assert!(
                    durable >= seq,
                    "{client} seq {seq} acknowledged before durable ({durable})"
                );
                let j: usize = client[1..].parse().expect("sync client names are c<j>");
                AckKey::Seq(j, seq)
            }
            _ => {
                assert!(
                    ledger.ids.contains(&(m.scope.clone(), m.id.clone())),
                    "mutation {} acknowledged before durable",
                    m.id
                );
                let i = self.raw_names.iter().position(|n| *n == m.id);
                let i = i.unwrap_or_else(|| {
                    self.raw_names.push(m.id.clone());
                    self.raw_names.len() - 1
                });
                AckKey::Id(
                    i,
                    SCOPES.iter().position(|s| *s == m.scope).unwrap_or(9) as u64,
                )
            }
        };
        if ws {
            self.counters.acked_ws += 1;
        } else {
            self.counters.acked_http += 1;
        }
        let summary = (
            r["ok"].as_bool().expect("ok"),
            r["cursor"].as_u64().unwrap_or(0),
            code,
        );
        match self.acked.get(&key) {
            Some(first) => {
                self.counters.replays += 1;
                assert_eq!(
                    first, &summary,
                    "mutation {} replayed with another result",
                    m.id
                );
            }
            None => {
                self.acked.insert(key, summary);
            }
        }
    }

    fn on_broker(&mut self, cmd: BackplaneCommand) {
        match cmd {
            BackplaneCommand::Interest {
                subscribe,
                unsubscribe,
            } => {
                assert!(self.broker.attached, "broker command without a broker");
                if !self.broker.up {
                    return; // lost with the link
                }
                for t in subscribe {
                    assert!(
                        !t.starts_with("sync:"),
                        "sync topics never cross the broker"
                    );
                    assert!(self.broker.interest.insert(t), "interest asked twice");
                }
                for t in unsubscribe {
                    assert!(self.broker.interest.remove(&t), "interest dropped twice");
                }
            }
            BackplaneCommand::Publish { topic, .. } => {
                assert!(!topic.starts_with("sync:"), "pokes never cross the broker");
                if self.broker.up {
                    self.counters.broker_out += 1;
                }
            }
            BackplaneCommand::Append { topic, data, .. } => {
                assert!(
                    self.broker.history && topic == FEED,
                    "an append of {topic} without the broker keeping its history"
                );
                assert!(self.broker.up, "no outage when the broker keeps history");
                self.broker_append(data);
            }
            BackplaneCommand::ReadHistory {
                request,
                topic,
                after,
                ..
            } => {
                assert!(self.broker.history && topic == FEED, "a read of {topic}");
                self.broker.reads.push_back((request, after));
            }
            other => panic!("the simulated broker has no use for {other:?}"),
        }
    }

    // ---- sessions ----

    fn open(&mut self, c: usize) {
        let name = self.conns[c].name.clone();
        let Some(sid) = self.with_core(|core, now| core.handle_open(now, name)) else {
            return;
        };
        if self
            .core
            .as_ref()
            .is_some_and(|core| !core.hub().contains(sid))
        {
            return; // opened during a shutdown: closed at once
        }
        self.by_sid.insert(sid, c);
        let conn = &mut self.conns[c];
        conn.sid = Some(sid);
        conn.reconnect_at = None;
        self.log(format!("open {} as {sid:?}", self.conns[c].name));
        match self.conns[c].role {
            Role::Sync(j) => {
                let topic = format!("sync:{}", self.replicas[j].scope);
                self.subscribe(c, &topic);
                let now = self.now();
                self.replicas[j].replica.handle_connected(now);
            }
            Role::Live(behaviour) => {
                let mut topics = std::mem::take(&mut self.conns[c].resubscribe);
                topics.remove(FEED);
                for topic in topics {
                    self.subscribe(c, &topic);
                }
                if behaviour == Behaviour::Recovering {
                    self.subscribe_feed(c);
                }
            }
        }
    }

    /// Subscribes a recovering client to the feed from the last position it
    /// read, or asks for the position when it has none.
    fn subscribe_feed(&mut self, c: usize) {
        if self.conns[c].sid.is_none() {
            return;
        }
        self.conns[c].subs.insert(FEED.to_owned());
        let data = match &self.conns[c].feed {
            Some((epoch, offset)) => {
                json!({"topic": FEED, "since": {"epoch": epoch, "offset": offset}})
            }
            None => json!({"topic": FEED, "history": true}),
        };
        self.text(c, &json!({"topic": "subscribe", "data": data}));
    }

    /// The session of connection `c` ended (closed, or the server crashed).
    fn session_ended(&mut self, c: usize, crash: bool) {
        let now = self.now();
        let delay = 20 + self.rng.below(300);
        let conn = &mut self.conns[c];
        conn.sid = None;
        conn.inbox.clear();
        conn.rids.clear();
        let subs = std::mem::take(&mut conn.subs);
        match conn.role {
            Role::Sync(j) => {
                conn.reconnect_at = Some(self.now_ms + delay);
                self.replicas[j].replica.handle_disconnected(now);
            }
            Role::Live(b) if crash || b == Behaviour::Recovering => {
                conn.resubscribe = subs;
                conn.reconnect_at = Some(self.now_ms + delay);
            }
            Role::Live(_) => conn.retired = true,
        }
    }

    fn frame(&mut self, c: usize, frame: Frame) {
        let Some(sid) = self.conns[c].sid else { return };
        self.with_core(|core, now| core.handle_frame(now, sid, frame));
    }

    fn text(&mut self, c: usize, v: &Value) {
        self.frame(c, Frame::Text(Bytes::from(v.to_string())));
    }

    fn subscribe(&mut self, c: usize, topic: &str) {
        if self.conns[c].sid.is_none() {
            return;
        }
        self.conns[c].subs.insert(topic.to_owned());
        self.text(c, &json!({"topic": "subscribe", "data": {"topic": topic}}));
    }

    /// Subscribers of `topic` that are open, by the model.
    fn subscribers(&self, topic: &str) -> Vec<usize> {
        (0..self.conns.len())
            .filter(|&c| self.conns[c].sid.is_some() && self.conns[c].subs.contains(topic))
            .collect()
    }

    fn expect_publish(&mut self, topic: &str) -> u64 {
        let n = self.fresh_n();
        if self.broker.history && topic == FEED {
            self.counters.publishes += 1;
            return n;
        }
        for c in self.subscribers(topic) {
            self.expected.push((c, n));
        }
        self.counters.publishes += 1;
        n
    }

    fn open_live(&self) -> Vec<usize> {
        (0..self.conns.len())
            .filter(|&c| self.conns[c].sid.is_some() && matches!(self.conns[c].role, Role::Live(_)))
            .collect()
    }

    // ---- the workload and the faults ----

    fn act(&mut self) {
        let live = self.open_live();
        if live.len() < 6 && self.rng.chance(0.02) {
            self.spawn_live();
        }
        if !live.is_empty() && self.rng.chance(0.5) {
            let c = live[self.rng.below(live.len() as u64) as usize];
            self.live_action(c);
        }
        if !self.replicas.is_empty() && self.rng.chance(0.25) {
            let j = self.rng.below(self.replicas.len() as u64) as usize;
            self.mutate(j);
        }
        if self.rng.chance(0.01) {
            let topic = TOPICS[self.rng.below(3) as usize];
            let n = self.expect_publish(topic);
            let data = Bytes::from(json!({ "n": n }).to_string());
            self.with_core(|core, _| core.publish(topic, data).expect("a valid publish"));
            self.expected.clear();
        }
        if self.rng.chance(0.004) {
            let live = self.open_live();
            if !live.is_empty() {
                let c = live[self.rng.below(live.len() as u64) as usize];
                let sid = self.conns[c].sid.expect("open");
                self.counters.kicks += 1;
                self.with_core(|core, _| core.close(sid, 4001, "kicked").expect("open"));
            }
        }
        if self.rng.chance(0.003) {
            self.trim();
        }
        if self.rng.chance(0.004) {
            let scope = match self.rng.below(3) {
                0 => None,
                i => Some(SCOPES[i as usize - 1].to_owned()),
            };
            self.with_core(|core, now| core.handle_store_notice(now, scope));
        }
        if self.rng.chance(0.015) {
            self.store.fail_next = Some(self.rng.chance(0.5));
        }
        if self.config.shared_store && self.rng.chance(0.02) {
            // As if another node wrote first (nothing, here): the scopes
            // are read, pushes wait for locking reads until those find
            // nothing new.
            self.store.stale_next = true;
        }
        if self.config.shared_store && self.rng.chance(0.01) {
            // The batch is tried again; only the store's version check
            // keeps it from being applied twice.
            self.store.land_next = true;
        }
        self.broker_faults();
        if self.core.is_some() && self.rng.chance(0.003) {
            self.crash();
        }
    }

    fn live_action(&mut self, c: usize) {
        let Role::Live(behaviour) = self.conns[c].role else {
            return;
        };
        if behaviour == Behaviour::Mute {
            return;
        }
        let recovering = behaviour == Behaviour::Recovering;
        let topic = if recovering && self.rng.chance(0.6) {
            FEED
        } else {
            TOPICS[self.rng.below(3) as usize]
        };
        match self.rng.below(100) {
            // A recovering client stays on the feed for its whole life.
            0..=27 if topic == FEED => {}
            0..=19 => self.subscribe(c, topic),
            20..=27 => {
                self.conns[c].subs.remove(topic);
                self.text(
                    c,
                    &json!({"topic": "unsubscribe", "data": {"topic": topic}}),
                );
            }
            28..=54 => {
                let n = self.expect_publish(topic);
                let msg = json!({"topic": "publish", "data": {"topic": topic, "data": {"n": n}}});
                self.text(c, &msg);
            }
            55..=59 => self.text(c, &json!({"topic": "hello", "data": {"x": 1}})),
            60..=79 => self.live_sync(c),
            80..=83 => self.frame(c, Frame::Ping(Bytes::from_static(b"hi"))),
            84..=86 => self.frame(c, Frame::Text(Bytes::from_static(b"{not json"))),
            87..=89 => {
                // Publishing on a sync topic is refused with an error frame.
                let msg = json!({"topic": "publish", "data": {"topic": "sync:room", "data": {"cursor": 999}}});
                self.text(c, &msg);
            }
            90..=92 => {
                self.log(format!("{} closes", self.conns[c].name));
                self.frame(c, Frame::Close(Some((1000, "bye".into()))));
            }
            93..=95 => {
                let Some(sid) = self.conns[c].sid else { return };
                self.counters.vanished += 1;
                self.log(format!("{} vanishes", self.conns[c].name));
                self.with_core(|core, now| core.handle_transport_closed(now, sid));
            }
            _ => {
                let Some(sid) = self.conns[c].sid else { return };
                let fault = match self.rng.below(3) {
                    0 => PeerFault::TooBig,
                    1 => PeerFault::InvalidUtf8,
                    _ => PeerFault::ProtocolError,
                };
                self.counters.peer_faults += 1;
                self.with_core(|core, now| core.handle_peer_fault(now, sid, fault));
            }
        }
    }

    /// A `_sync` request from a live client: pulls, snapshots, pushes of
    /// mutations without a client id (deduplicated by id), and bad ones.
    fn live_sync(&mut self, c: usize) {
        let scope = SCOPES[self.rng.below(2) as usize];
        let (op, push, body) = match self.rng.below(6) {
            0 => {
                let cursor = self.rng.below(self.head(scope) + 3);
                (
                    Operation::Pull,
                    vec![],
                    json!({"scope": scope, "cursor": cursor, "limit": 1 + self.rng.below(5)}),
                )
            }
            1 => (Operation::Snapshot, vec![], json!({ "scope": scope })),
            2 => {
                // Unknown op: refused with 404, still answered.
                let conn = &mut self.conns[c];
                conn.next_rid += 1;
                let rid = json!(format!("{}-{}", conn.name, conn.next_rid));
                conn.rids.insert(
                    rid.to_string(),
                    Waiting {
                        replica: None,
                        op: Operation::Snapshot,
                        push: vec![],
                    },
                );
                let msg = json!({"topic": "_sync", "data": {"rid": rid, "op": "bogus"}});
                self.text(c, &msg);
                return;
            }
            _ => {
                let m = Mutation {
                    id: format!("raw{}", self.rng.below(20)),
                    scope: scope.into(),
                    name: "incr".into(),
                    args: Some(json!({"key": "r"})),
                    client_id: None,
                    seq: None,
                };
                let body = json!({ "mutations": [m] });
                (Operation::Push, vec![m], body)
            }
        };
        let conn = &mut self.conns[c];
        conn.next_rid += 1;
        let rid = json!(format!("{}-{}", conn.name, conn.next_rid));
        conn.rids.insert(
            rid.to_string(),
            Waiting {
                replica: None,
                op,
                push,
            },
        );
        let msg = json!({"topic": "_sync", "data": {"rid": rid, "op": op.name(), "body": body}});
        self.counters.ws_syncs += 1;
        self.text(c, &msg);
    }

    fn mutate(&mut self, j: usize) {
        let now = self.now();
        let (name, args) = match self.rng.below(4) {
            0 => (
                "put",
                json!({"key": format!("k{}", self.rng.below(5)), "value": self.rng.below(100)}),
            ),
            1 => ("delete", json!({"key": format!("k{}", self.rng.below(5))})),
            _ => ("incr", json!({"key": format!("n{}", self.rng.below(3))})),
        };
        let r = &mut self.replicas[j];
        let seq = r.replica.mutate(now, name, args).expect("local apply");
        let m = r.replica.pending().last().expect("queued").clone();
        self.store.ledger.created.insert((r.name.clone(), seq), m);
        self.counters.mutations += 1;
    }

    fn trim(&mut self) {
        let scope = SCOPES[self.rng.below(2) as usize];
        let Some(core) = self.core.as_ref() else {
            return;
        };
        let head = core.engine().durable_head(scope);
        if head <= 3 {
            return;
        }
        let before = head + 1 - self.rng.below(4);
        self.counters.trims += 1;
        self.log(format!("trim {scope} before {before}"));
        let ticket = self
            .with_core(|core, _| core.trim(scope, before).expect("a trim within the head"))
            .expect("up");
        assert!(self.tickets.insert(ticket), "ticket reused");
    }

    /// The broker numbers and keeps a publication on [`FEED`]; it travels
    /// to this node if the node follows the topic now.
    fn broker_append(&mut self, data: Bytes) {
        self.expire_feed();
        let b = &mut self.broker;
        b.feed_last += 1;
        b.feed.push_back((b.feed_last, self.now_ms, data.clone()));
        while b.feed.len() > FEED_HISTORY {
            b.feed.pop_front();
        }
        if b.interest.contains(FEED) {
            b.numbered.push_back((b.feed_last, data));
        }
    }

    fn expire_feed(&mut self) {
        let ttl = u64::try_from(FEED_TTL.as_millis()).unwrap_or(u64::MAX);
        let now = self.now_ms;
        self.broker.feed.retain(|&(_, at, _)| at + ttl > now);
    }

    /// The broker's side of [`FEED`]'s history: numbered publications
    /// arrive in order, reads are answered, other nodes publish.
    fn broker_history(&mut self) {
        if self.core.is_none() {
            return;
        }
        if !self.broker.numbered.is_empty() && self.rng.chance(0.5) {
            if let Some((offset, data)) = self.broker.numbered.pop_front() {
                self.counters.broker_numbered += 1;
                self.with_core(|core, now| {
                    core.handle_broker_numbered(now, FEED, BROKER_EPOCH, offset, &data);
                });
            }
        }
        if !self.broker.reads.is_empty() && self.rng.chance(0.3) {
            if let Some((request, after)) = self.broker.reads.pop_front() {
                self.counters.broker_reads += 1;
                self.expire_feed();
                let entries = match after {
                    Some(after) => self
                        .broker
                        .feed
                        .iter()
                        .filter(|(o, _, _)| *o > after)
                        .map(|(o, _, d)| (*o, d.clone()))
                        .collect(),
                    None => Vec::new(),
                };
                let read = crate::HistoryRead {
                    epoch: BROKER_EPOCH.to_owned(),
                    last: self.broker.feed_last,
                    entries,
                };
                self.with_core(|core, now| core.handle_history_read(now, request, Some(read)));
            }
        }
        if self.rng.chance(0.03) {
            // Another node publishes on the feed.
            let n = self.fresh_n();
            self.counters.publishes += 1;
            self.broker_append(Bytes::from(json!({ "n": n }).to_string()));
        }
    }

    fn broker_faults(&mut self) {
        if !self.broker.attached {
            return;
        }
        if self.broker.history {
            self.broker_history();
        }
        if self.broker.up && !self.broker.history && self.core.is_some() && self.rng.chance(0.004) {
            self.log("broker lost".into());
            self.counters.broker_outages += 1;
            self.broker.up = false;
            self.broker.interest.clear();
            self.broker.restore_at = Some(self.now_ms + 20 + self.rng.below(800));
        }
        if self.rng.chance(0.05) {
            // Another node publishes.
            let topic = TOPICS[self.rng.below(3) as usize];
            if self.broker.up && self.broker.interest.contains(topic) && self.core.is_some() {
                let n = self.expect_publish(topic);
                let data = json!({ "n": n }).to_string();
                self.counters.broker_in += 1;
                self.with_core(|core, now| core.handle_broker_message(now, topic, data.as_bytes()));
            } else {
                self.counters.broker_lost += 1;
            }
        }
    }

    fn restore_broker(&mut self) {
        if self.broker.restore_at.is_some_and(|t| t <= self.now_ms) {
            self.broker.restore_at = None;
            self.broker.up = true;
            self.log("broker restored".into());
            self.with_core(|core, now| core.handle_broker_restored(now));
        }
    }

    fn crash(&mut self) {
        self.log("server crash".into());
        self.counters.crashes += 1;
        self.core = None;
        if let Some((_, Job::Persist(job))) = self.job.take()
            && self.rng.chance(0.5)
        {
            // The commit landed; its report never came.
            self.store.fail_next = None;
            self.store.stale_next = false;
            self.store.land_next = false;
            if jobs::persist(&mut self.store, &job).is_ok() {
                self.counters.unacknowledged_commits += 1;
                self.log(format!("batch {} durable, never reported", job.number));
            }
        }
        self.http.clear();
        self.tickets.clear();
        self.done.clear();
        self.hooks.clear();
        self.by_sid.clear();
        for c in 0..self.conns.len() {
            if self.conns[c].sid.is_some() {
                self.session_ended(c, true);
            }
        }
        self.broker.interest.clear();
        self.broker.restore_at = None;
        // What was on its way to the node, or being read for it, is lost
        // with it; the broker keeps the history.
        self.broker.numbered.clear();
        self.broker.reads.clear();
        self.down_until = self.now_ms + 50 + self.rng.below(1500);
    }

    fn restart(&mut self) {
        if self.core.is_some() || self.down_until > self.now_ms {
            return;
        }
        self.log("server restart".into());
        let now = self.now();
        let recovered = self.store.load().expect("load");
        let core = Core::new(
            now,
            Timestamp::from_millis(WALL_BASE + self.now_ms),
            self.config.clone(),
            AllowAll,
            app(),
            recovered,
        )
        .expect("recover");
        // Every durable change survived, nothing else did.
        for (scope, head) in &self.store.ledger.head {
            assert_eq!(
                core.engine().durable_head(scope),
                *head,
                "{scope}: recovered head"
            );
        }
        self.core = Some(core);
        if self.broker.attached {
            self.broker.up = true;
            self.broker.restore_at = None;
            self.with_core(|core, now| core.handle_broker_attached(now));
        }
    }

    fn complete_job(&mut self) {
        if self.job.as_ref().is_none_or(|(due, _)| *due > self.now_ms) {
            return;
        }
        let Some((_, job)) = self.job.take() else {
            return;
        };
        let took = Duration::from_millis(1);
        match job {
            Job::Persist(job) => {
                let landing = self.store.land_next;
                let result = jobs::persist(&mut self.store, &job);
                if landing && !self.store.land_next {
                    self.counters.landed_unanswered += 1;
                }
                if let Err(f) = &result {
                    self.counters.persist_failures += 1;
                    self.counters.unavailable += u64::from(f.unavailable);
                    self.log(format!("batch {} failed: {}", job.number, f.message));
                }
                self.with_core(|core, now| {
                    core.handle_persisted(now, job.number, result, took)
                        .expect("the batch that is out")
                });
            }
            Job::Reload(job) => {
                self.counters.reloads += 1;
                let reloaded = jobs::reload(&mut self.store, &job);
                self.with_core(|core, now| core.handle_reloaded(now, reloaded));
            }
        }
    }

    fn reconnect(&mut self) {
        if self.core.is_none() {
            return;
        }
        for c in 0..self.conns.len() {
            let conn = &self.conns[c];
            if !conn.retired && conn.reconnect_at.is_some_and(|t| t <= self.now_ms) {
                self.counters.reconnects += 1;
                self.open(c);
            }
        }
    }

    fn replicas_step(&mut self) {
        let now = self.now();
        for j in 0..self.replicas.len() {
            let r = &mut self.replicas[j].replica;
            if r.poll_timeout().is_some_and(|(t, _)| t <= now) {
                r.handle_timeout(now);
            }
            while let Some(ev) = r.poll_event() {
                if matches!(ev, sync_core::ReplicaEvent::Reset { .. }) {
                    self.counters.resets += 1;
                }
            }
            if self.core.is_none() {
                continue;
            }
            let Some(req) = self.replicas[j].replica.poll_request(now) else {
                continue;
            };
            let op = req.operation();
            let push = match &req.request {
                SyncRequest::Push(p) => p.mutations.clone(),
                _ => Vec::new(),
            };
            let c = self.replicas[j].conn;
            if self.replicas[j].ws {
                let conn = &mut self.conns[c];
                let key = Value::from(req.id.0).to_string();
                let waiting = Waiting {
                    replica: Some((j, req.id)),
                    op,
                    push,
                };
                conn.rids.insert(key, waiting);
                self.counters.ws_syncs += 1;
                self.frame(c, Frame::Text(Bytes::from(req.ws_text())));
            } else {
                let body = req.body_bytes();
                let user = self.replicas[j].name.clone();
                let request = HttpSync {
                    method: "POST",
                    path: req.http_path(),
                    query: "",
                    body: Body::Read(&body),
                };
                let now = self.now();
                let core = self.core.as_mut().expect("up");
                let id = core.handle_http_sync(now, &user, request);
                assert!(!self.http.contains_key(&id), "request id reused");
                self.counters.http_syncs += 1;
                self.http.insert(
                    id,
                    HttpRoute {
                        replica: j,
                        id: req.id,
                        op,
                        push,
                    },
                );
                self.drain();
            }
        }
    }

    /// Clients read what was written to them and report it flushed.
    fn flush(&mut self) {
        let stuck = (self.sabotage == Sabotage::StuckConsumer)
            .then(|| {
                (0..self.conns.len()).find(|&c| {
                    self.conns[c].sid.is_some() && self.conns[c].role != Role::Live(Behaviour::Slow)
                })
            })
            .flatten();
        for c in 0..self.conns.len() {
            let Some(sid) = self.conns[c].sid else {
                continue;
            };
            if self.conns[c].role == Role::Live(Behaviour::Slow) || Some(c) == stuck {
                if self.rng.chance(0.1) {
                    // Still alive: it writes, it just never reads.
                    self.frame(c, Frame::Pong(Bytes::new()));
                }
                continue;
            }
            if self.conns[c].inbox.is_empty() {
                continue;
            }
            let frames: Vec<_> = self.conns[c].inbox.drain(..).collect();
            let bytes = frames.iter().map(|(f, _, _)| f.len()).sum();
            let count = frames.len();
            self.with_core(|core, now| core.handle_flushed(now, sid, count, bytes));
            for (_, received, _) in frames {
                self.receive(c, received);
            }
        }
    }

    fn receive(&mut self, c: usize, received: Received) {
        let now = self.now();
        match received {
            Received::Ping(p) => {
                if self.conns[c].role != Role::Live(Behaviour::Mute) {
                    self.frame(c, Frame::Pong(p));
                }
            }
            Received::Reply {
                to: Some((j, id)),
                status,
                body,
            } => self.replicas[j]
                .replica
                .handle_response(now, id, status, &body),
            Received::Poke(cursor) => {
                if let Role::Sync(j) = self.conns[c].role {
                    self.replicas[j].replica.handle_poke(now, cursor);
                }
            }
            Received::Subscribed {
                epoch,
                offset,
                recovered,
            } => {
                let conn = &mut self.conns[c];
                if recovered {
                    let (at, last) = conn.feed.as_ref().expect("recovered without a position");
                    assert_eq!(*at, epoch, "{}: recovered in another epoch", conn.name);
                    assert!(offset >= *last, "{}: recovered past the head", conn.name);
                    self.counters.recoveries += 1;
                    if self.broker.history {
                        self.counters.broker_recoveries += 1;
                    }
                } else {
                    // Nothing old follows: the client reloads and goes on
                    // from the head.
                    conn.feed = Some((epoch, offset));
                    self.counters.recovery_misses += 1;
                }
            }
            Received::Feed(offset) => {
                let conn = &mut self.conns[c];
                let name = conn.name.clone();
                let (_, last) = conn
                    .feed
                    .as_mut()
                    .unwrap_or_else(|| panic!("{name}: a feed publication before the reply"));
                assert_eq!(
                    offset,
                    *last + 1,
                    "{name}: feed offset {offset} after {last}: a gap or a duplicate"
                );
                *last = offset;
                self.counters.feed_reads += 1;
            }
            Received::Reply { to: None, .. } | Received::Other => {}
        }
    }

    fn timeouts(&mut self) {
        let now = self.now();
        if self
            .core
            .as_ref()
            .and_then(Core::poll_timeout)
            .is_some_and(|(t, _)| t <= now)
        {
            self.with_core(|core, now| core.handle_timeout(now));
        }
    }

    // ---- invariants ----

    fn check_step(&mut self) {
        let Some(core) = self.core.as_ref() else {
            return;
        };
        let hub = core.hub();
        assert_eq!(hub.session_count(), self.by_sid.len(), "open sessions");
        for conn in &self.conns {
            let Some(sid) = conn.sid else { continue };
            let topics: BTreeSet<String> = hub
                .topics_of(sid)
                .expect("open in the hub")
                .map(str::to_owned)
                .collect();
            assert_eq!(topics, conn.subs, "{}: subscriptions", conn.name);
            let (queued, _) = hub.queued(sid).expect("open");
            assert_eq!(queued, conn.inbox.len(), "{}: queue depth", conn.name);
            // A slow consumer slows nobody else: what is written to the
            // others is read promptly.
            if conn.role != Role::Live(Behaviour::Slow)
                && let Some((_, _, at)) = conn.inbox.front()
            {
                let age = self.now_ms - at;
                assert!(age <= 1000, "{}: a frame unread for {age} ms", conn.name);
            }
        }
        if self.broker.up {
            let wanted: BTreeSet<String> = self
                .conns
                .iter()
                .filter(|c| c.sid.is_some())
                .flat_map(|c| c.subs.iter())
                .filter(|t| !t.starts_with("sync:"))
                .cloned()
                .collect();
            assert_eq!(self.broker.interest, wanted, "the broker's interest");
        }
        assert_eq!(
            core.job_outstanding(),
            self.job.is_some(),
            "the job the core thinks is out"
        );
        for (scope, head) in &self.store.ledger.head {
            let engine = core.engine().durable_head(scope);
            assert!(engine <= *head, "{scope}: the engine is ahead of the store");
        }
    }

    fn step(&mut self) {
        self.counters.steps += 1;
        let now = self.now();
        let wall = Timestamp::from_millis(WALL_BASE + self.now_ms);
        if let Some(core) = self.core.as_mut() {
            core.handle_wall_clock(now, wall);
        }
        if self.faults {
            self.act();
        }
        self.restart();
        self.restore_broker();
        self.complete_job();
        self.reconnect();
        self.replicas_step();
        self.flush();
        self.timeouts();
        self.check_step();
        self.advance();
    }

    fn advance(&mut self) {
        let next = self.next_event_ms();
        if (!self.faults || self.rng.chance(0.03)) && next > self.now_ms {
            self.counters.time_jumps += 1;
            self.now_ms = next;
            return;
        }
        self.now_ms += 1 + self.rng.below(20);
    }

    /// The earliest time anything is scheduled.
    fn next_event_ms(&self) -> u64 {
        let mut next = u64::MAX;
        if let Some((t, _)) = self.core.as_ref().and_then(Core::poll_timeout) {
            next = next.min(self.ms(t));
        }
        if let Some((t, _)) = &self.job {
            next = next.min(*t);
        }
        if self.core.is_none() {
            next = next.min(self.down_until);
        }
        if let Some(t) = self.broker.restore_at {
            next = next.min(t);
        }
        for conn in &self.conns {
            if let Some(t) = conn.reconnect_at {
                next = next.min(t);
            }
        }
        for r in &self.replicas {
            if let Some((t, _)) = r.replica.poll_timeout() {
                next = next.min(self.ms(t) + 1);
            }
        }
        next.max(self.now_ms + 1)
    }

    fn converged(&self) -> bool {
        let Some(core) = &self.core else { return false };
        self.job.is_none()
            && !core.engine().has_ready()
            && self.http.is_empty()
            && self.broker.restore_at.is_none()
            && self.replicas.iter().all(|r| {
                self.conns[r.conn].sid.is_some()
                    && r.replica.is_settled()
                    && r.replica.cursor() == core.engine().durable_head(&r.scope)
            })
    }

    /// Runs `steps` steps with faults, heals, runs until every client
    /// converged, closes everyone, shuts down, and checks the end state.
    /// Panics on a broken invariant.
    pub fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.step();
        }
        self.faults = false;
        self.store.fail_next = None;
        self.store.stale_next = false;
        self.store.land_next = false;
        self.log("healed".into());
        let deadline = self.now_ms + 120_000;
        while !self.converged() {
            assert!(self.now_ms < deadline, "no convergence after healing");
            self.step();
        }
        self.finish();
    }

    fn finish(&mut self) {
        let core = self.core.as_ref().expect("up");
        assert_eq!(core.waiting_requests(), 0, "requests left waiting");
        for conn in &self.conns {
            if conn.sid.is_some() {
                let waiting = conn.rids.keys().collect::<Vec<_>>();
                assert!(
                    waiting.is_empty(),
                    "{}: _sync rids never answered: {waiting:?}",
                    conn.name
                );
            }
        }
        // Some leave on their own, the rest are closed by the shutdown.
        for c in 0..self.conns.len() {
            let Some(sid) = self.conns[c].sid else {
                continue;
            };
            match self.rng.below(3) {
                0 => self.frame(c, Frame::Close(None)),
                1 => {
                    self.with_core(|core, now| core.handle_transport_closed(now, sid));
                }
                _ => {}
            }
        }
        self.log("shutdown".into());
        self.with_core(|core, now| core.handle_shutdown(now));
        let deadline = self.now_ms + 10_000;
        while !self.stopped {
            assert!(self.now_ms < deadline, "shutdown never finished");
            self.now_ms += 1 + self.rng.below(20);
            if let Some((due, _)) = &self.job {
                self.now_ms = self.now_ms.max(*due);
            }
            self.complete_job();
        }
        let core = self.core.as_ref().expect("up");
        assert_eq!(core.hub().session_count(), 0, "sessions leaked");
        assert!(self.by_sid.is_empty(), "sessions never reported closed");
        assert_eq!(core.waiting_requests(), 0, "waiters leaked");
        assert_eq!(core.pending_commands(), 0, "commands leaked");
        assert_eq!(self.tickets, self.done, "every trim done once");
        assert_eq!(core.poll_timeout(), None, "timers leaked");
        assert!(!core.job_outstanding(), "a job left out");
        assert!(core.is_stopped());
        self.check_end();
    }

    fn check_end(&self) {
        let core = self.core.as_ref().expect("up");
        let snaps: BTreeMap<&str, Value> = SCOPES
            .iter()
            .map(|&scope| {
                let req = SnapshotRequest {
                    scope: scope.into(),
                    client_id: None,
                };
                (scope, core.engine().handle_snapshot(&req).data)
            })
            .collect();
        let ledger = &self.store.ledger;
        for r in &self.replicas {
            // Exactly once: every mutation made was applied.
            let durable = ledger.seq.get(&r.name).copied().unwrap_or(0);
            assert_eq!(durable, r.replica.last_seq(), "{}: applied vs made", r.name);
            assert_eq!(r.replica.pending().count(), 0, "{}: pending", r.name);
            let state = serde_json::to_value(r.replica.state()).expect("state");
            assert_eq!(
                &state,
                &snaps[r.scope.as_str()],
                "{}: state differs from the server's",
                r.name
            );
        }
        // At most once: each counter equals the number of incr applied.
        for ((scope, key), n) in &ledger.incr_applied {
            assert_eq!(
                snaps[scope.as_str()].get(key),
                Some(&json!(n)),
                "{scope}: counter {key}"
            );
        }
    }
}

impl Conn {
    fn new(name: String, role: Role) -> Self {
        Conn {
            name,
            role,
            sid: None,
            subs: BTreeSet::new(),
            resubscribe: BTreeSet::new(),
            inbox: VecDeque::new(),
            rids: BTreeMap::new(),
            next_rid: 0,
            reconnect_at: None,
            retired: false,
            feed: None,
        }
    }
}

/// Runs one seeded simulation of `steps` faulty steps from the instant
/// `base`. On a broken invariant prints the seed, how to replay it and the
/// trace's tail, then panics again.
pub fn run_seed(seed: u64, steps: usize, base: Instant) -> Counters {
    let mut sim = Sim::new(Decisions::seeded(seed), base);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run(steps)));
    if let Err(e) = result {
        eprintln!("--- trace tail of seed {seed} ---");
        for line in sim.trace.iter().rev().take(40).rev() {
            eprintln!("{line}");
        }
        eprintln!(
            "server simulation failed at seed {seed}; replay it alone with: \
             SIM_SEED={seed} cargo test -p server-core --test simulation"
        );
        std::panic::resume_unwind(e);
    }
    sim.counters
}
