//! [`ServerCore`]: the state, the getters, the outputs, and the step that
//! follows every input ([`ServerCore::pump`]). Inputs and commands live in
//! the child modules, one concern each.

mod commands;
pub(crate) mod guard;
mod live;
mod outage;
mod persist;
mod reload;
mod sync;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use live_core::{Hub, SessionId};
use serde_json::Value;
use sync_core::{
    App, Engine, Mutation, Recovered, RecoveryError, RequestId, SyncRequest, Timestamp,
};

use crate::broker::PendingInterest;
use crate::config::CoreConfig;
use crate::metrics::{GuardMetrics, MetricsSnapshot, SyncMetrics};
use crate::output::{Deadline, Output, Ticket, TimerReason};
use crate::policy::Policy;

/// Who waits for the answer to a sync request.
#[derive(Debug)]
enum Waiter {
    /// An HTTP request: answered with [`Output::Answer`].
    Http,
    /// A `_sync` message: answered on the session, echoing `rid`.
    Ws { session: SessionId, rid: Value },
}

/// A request waiting before the engine sees it, with the wall time it
/// arrived at.
#[derive(Debug)]
struct Deferred {
    id: RequestId,
    request: SyncRequest,
    wall: Timestamp,
}

impl Deferred {
    /// Whether this request names `scope`.
    fn names(&self, scope: &str) -> bool {
        self.request.scopes().any(|s| s == scope)
    }
}

/// A push on a shared store, kept to push it again when its batch is
/// refused as stale or meets an outage (see persist.rs).
#[derive(Debug)]
struct Retry {
    mutations: Vec<Mutation>,
    /// Stale refusals so far.
    attempts: u8,
    wall: Timestamp,
}

/// A trim not done yet: its ticket, and what it trims, to give it to the
/// engine again should the batch it rode on (or the open batch the engine
/// drops with it) fail and be tried again (see persist.rs).
#[derive(Debug, Clone)]
struct PendingTrim {
    ticket: Ticket,
    scope: String,
    before: u64,
}

/// A scope other nodes write beside this one.
#[derive(Debug, Clone, Copy)]
struct Contended {
    /// How many more locking reads that find nothing new keep it so.
    reads_left: u8,
    /// The last batch of this node that wrote it. While that is recent,
    /// this node is writing the scope, and another node's commit to it is
    /// read under its lock (the next pushes are likely on their way);
    /// otherwise it is locked only for pushes waiting, so a node that
    /// stopped writing a scope does not hold back the nodes that still do.
    written_in: u64,
}

/// Scopes to be read because other nodes wrote them.
#[derive(Debug, Default)]
struct Wanted {
    /// To read as soon as no batch is out: subscribers here wait to be
    /// poked about them, or a request here waits for them.
    scopes: std::collections::BTreeSet<String>,
    /// Held here but watched by nobody here, or whose read failed: read
    /// only once a request names them (see reload.rs).
    later: std::collections::BTreeSet<String>,
    /// Every scope (the change feed was interrupted).
    all: bool,
    /// When scopes whose read failed (now in `later`) are read again if
    /// watched here ([`READ_RETRY`] after the failure).
    retry_at: Option<Instant>,
}

/// How long after a failed read of other nodes' commits the scopes watched
/// here are read again: soon enough that their subscribers are poked
/// shortly after the store is back, seldom enough not to hammer a store
/// that is down.
pub(super) const READ_RETRY: Duration = Duration::from_secs(1);

/// The whole server as one state machine: the live hub, the sync engine and
/// every policy between them and around them.
///
/// See the crate documentation for the call order.
pub struct ServerCore<U, P, A: App> {
    hub: Hub<U>,
    engine: Engine<A>,
    policy: Arc<P>,
    config: CoreConfig,
    /// The instant of the latest input: commands that take no `now` act at it.
    now: Instant,
    /// Wall time at `now` as last reported: `(at, wall)`.
    wall: (Instant, Timestamp),
    outputs: VecDeque<Output<U>>,
    waiters: BTreeMap<RequestId, Waiter>,
    next_request: u64,
    next_ticket: u64,
    /// The batch being persisted and how many changes it carries.
    persisting: Option<(u64, usize)>,
    /// The scopes of the reload job out (never empty while one is out, so
    /// empty means none is): requests naming one wait in `deferred` until
    /// it is applied, so no work of this node lands on a scope while its
    /// reload is read (the engine would have to refuse the reload).
    reload_scopes: std::collections::BTreeSet<String>,
    /// When the reload job out was sent (for `/metrics`, and to time an
    /// outage it meets from).
    reload_sent: Option<Instant>,
    /// Requests waiting before the engine sees them (see `sync.rs`), in
    /// arrival order.
    deferred: VecDeque<Deferred>,
    /// The store holds scopes locked for the next batch, which goes out
    /// next (see persist.rs): batch `n` was refused as stale, or (`n` = 0,
    /// which no batch has) a locking read returned.
    rebasing: Option<u64>,
    /// Scopes other nodes write beside this one (a batch on them was
    /// refused as stale). Pushes on them wait for a locking read (see
    /// reload.rs).
    contended: BTreeMap<String, Contended>,
    /// The number of the last batch sent.
    last_batch: u64,
    /// The scopes the reload out locks for the next batch.
    locking: std::collections::BTreeSet<String>,
    /// Scopes the store holds locked after a locking read, until the next
    /// batch goes out: pushes on them go to the engine.
    locked: std::collections::BTreeSet<String>,
    /// The batch out is an empty one that only lets the store release the
    /// scopes it held.
    releasing: bool,
    /// Trims whose batch was not handed out yet.
    trims_open: Vec<PendingTrim>,
    /// Trims waiting for batch `.0` to be durable.
    trims_batched: Vec<(u64, PendingTrim)>,
    retry: BTreeMap<RequestId, Retry>,
    /// The shared store is away (see outage.rs).
    outage: Option<outage::Outage>,
    wanted: Wanted,
    /// Scopes the store must forget before its next job.
    forget: Vec<String>,
    /// The broker's interest, once a link is attached.
    broker: Option<PendingInterest>,
    /// The broker link's connection, as it reports it (shown once a link
    /// is attached: `broker` is some).
    broker_link: crate::metrics::BrokerMetrics,
    /// History reads asked during this step: sent after its interest change.
    reads: Vec<crate::broker::BackplaneCommand>,
    metrics: SyncMetrics,
    /// Credential expiries and message allowances per session.
    guard: guard::Guard,
    guard_metrics: GuardMetrics,
    shutting_down: bool,
    stopped: bool,
}

impl<U, P, A> ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    /// A server core on the engine recovered from `recovered` (what the
    /// store's `load` returned). `now` and `wall` anchor the wall clock
    /// written into new changes (see [`ServerCore::handle_wall_clock`]).
    pub fn new(
        now: Instant,
        wall: Timestamp,
        config: CoreConfig,
        policy: P,
        app: A,
        recovered: Recovered,
    ) -> Result<Self, RecoveryError> {
        let mut engine_config = config.engine.clone();
        // Other nodes write too: a sequence gap may only mean this node has
        // not seen their writes yet, so the store verifies it.
        engine_config.verify_sequence_gaps |= config.shared_store;
        let engine = Engine::recover(app, engine_config, recovered)?;
        let policy = Arc::new(policy);
        let hub = Hub::new(config.hub.clone(), config.seed)
            .with_authorizer(crate::policy::PolicyAuthorizer(policy.clone()))
            .with_history_policy(crate::policy::PolicyHistory(
                policy.clone(),
                std::marker::PhantomData,
            ));
        Ok(ServerCore {
            hub,
            engine,
            policy,
            config,
            now,
            wall: (now, wall),
            outputs: VecDeque::new(),
            waiters: BTreeMap::new(),
            next_request: 0,
            next_ticket: 0,
            persisting: None,
            reload_scopes: Default::default(),
            reload_sent: None,
            deferred: VecDeque::new(),
            rebasing: None,
            contended: BTreeMap::new(),
            locking: Default::default(),
            last_batch: 0,
            locked: Default::default(),
            releasing: false,
            trims_open: Vec::new(),
            trims_batched: Vec::new(),
            retry: BTreeMap::new(),
            outage: None,
            wanted: Wanted::default(),
            forget: Vec::new(),
            broker: None,
            broker_link: crate::metrics::BrokerMetrics::default(),
            reads: Vec::new(),
            metrics: SyncMetrics::default(),
            guard: guard::Guard::default(),
            guard_metrics: GuardMetrics::default(),
            shutting_down: false,
            stopped: false,
        })
    }

    // ---- getters ----

    /// The live hub (sessions, topics, queues).
    pub fn hub(&self) -> &Hub<U> {
        &self.hub
    }

    /// The sync engine (scopes, durable heads, states).
    pub fn engine(&self) -> &Engine<A> {
        &self.engine
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// The hub's and the sync side's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut sync = self.metrics;
        sync.scopes = self.engine.scopes().count() as u64;
        sync.contended_scopes = self.contended.len() as u64;
        sync.store_unreachable = u64::from(self.outage.is_some());
        MetricsSnapshot::new(self.hub.metrics(), sync)
            .with_guard(self.guard_metrics)
            .with_broker(self.broker.is_some().then_some(self.broker_link))
    }

    /// Sync requests not answered yet.
    pub fn waiting_requests(&self) -> usize {
        self.waiters.len()
    }

    /// True when a job ([`Output::Persist`] or [`Output::Reload`]) is out.
    pub fn job_outstanding(&self) -> bool {
        self.persisting.is_some() || !self.reload_scopes.is_empty()
    }

    /// Server-side commands (trims) not finished yet.
    pub fn pending_commands(&self) -> usize {
        self.trims_open.len() + self.trims_batched.len()
    }

    /// True once [`Output::Stopped`] was emitted.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    // ---- outputs ----

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output<U>> {
        // Everything in `outputs` was queued before what the hub holds (see
        // `emit`).
        self.outputs
            .pop_front()
            .or_else(|| self.hub.poll_action().map(from_hub))
    }

    /// When [`ServerCore::handle_timeout`] must be called next, and why.
    pub fn poll_timeout(&self) -> Option<Deadline> {
        let hub = self
            .hub
            .poll_timeout()
            .map(|(at, why)| (at, TimerReason::Hub(why)));
        let expiry = self
            .guard
            .next_expiry()
            .map(|at| (at, TimerReason::TokenExpiry));
        let retry = self.wanted.retry_at.map(|at| (at, TimerReason::ReadRetry));
        let outage = (self.outage)
            .and_then(|o| o.resume_at())
            .map(|at| (at, TimerReason::StoreRetry));
        [hub, expiry, retry, outage]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at)
    }

    // ---- time ----

    /// Tells the core the wall time at `now`. The changes a push creates are
    /// stamped with wall time derived from the latest report and the time
    /// passed since; a loop reports it once per turn.
    pub fn handle_wall_clock(&mut self, now: Instant, wall: Timestamp) {
        self.now = self.now.max(now);
        self.wall = (now, wall);
    }

    /// The deadlines that have passed: the hub's, credentials that expired
    /// unrefreshed (their sessions are closed with 4001), reads and batches
    /// to try again.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.at(now);
        self.hub.handle_timeout(now);
        self.expire_due(now);
        self.retry_reads();
        self.resume_after_outage();
        self.pump();
    }

    // ---- the step after every input ----

    /// Records the time of an input. Time never goes back: an earlier `now`
    /// (a loop's clock read before another input's) acts at the latest.
    fn at(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// The wall time written into changes created now.
    fn wall_now(&self) -> Timestamp {
        let (at, wall) = self.wall;
        let since = self.now.saturating_duration_since(at);
        Timestamp::from_millis(wall.as_millis().saturating_add(millis(since)))
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Moves the hub's socket work to the outputs, in order. Returns whether
    /// there was any.
    /// Queues an output of the core's own. The hub's sends and closes wait
    /// in the hub's queue and [`ServerCore::poll_output`] takes them from
    /// there, so a publish to a thousand sessions is not copied once more;
    /// whatever the hub queued before this output is moved ahead of it here,
    /// which keeps the order (a session's `Close` before its `Closed`).
    fn emit(&mut self, output: Output<U>) {
        while let Some(action) = self.hub.poll_action() {
            self.outputs.push_back(from_hub(action));
        }
        self.outputs.push_back(output);
    }

    /// Drains both cores until neither has anything left to say, starts the
    /// next job if none is out, and finishes what that settles.
    fn pump(&mut self) {
        loop {
            // The hub's sends and closes need nothing more from the core:
            // they stay in its queue (see `emit`).
            let mut busy = false;
            while let Some(event) = self.hub.poll_event() {
                busy = true;
                self.on_hub_event(event);
            }
            while let Some(output) = self.engine.poll_output() {
                busy = true;
                self.on_engine_output(output);
            }
            if self.start_job() {
                busy = true;
            }
            if !busy {
                break;
            }
        }
        if let Some(command) = self.broker.as_mut().and_then(PendingInterest::take) {
            self.emit(Output::Broker(command));
        }
        for read in std::mem::take(&mut self.reads) {
            self.emit(Output::Broker(read));
        }
        if self.persisting.is_none() && !self.engine.has_ready() {
            // Trims that reached no batch changed nothing: they are done.
            for PendingTrim { ticket, .. } in std::mem::take(&mut self.trims_open) {
                self.emit(Output::Done {
                    ticket,
                    result: Ok(()),
                });
            }
        }
        if self.shutting_down
            && !self.stopped
            && !self.job_outstanding()
            && !self.engine.has_ready()
        {
            self.stopped = true;
            self.emit(Output::Stopped);
        }
    }
}

/// A hub action as the core's output.
fn from_hub<U>(action: live_core::Action) -> Output<U> {
    match action {
        live_core::Action::Send { id, frame } => Output::Send { id, frame },
        live_core::Action::Close { id, code, reason } => Output::Close { id, code, reason },
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<U, P, A: App> std::fmt::Debug for ServerCore<U, P, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCore")
            .field("hub", &self.hub)
            .field("waiters", &self.waiters.len())
            .field("persisting", &self.persisting)
            .field("reloading", &self.reload_scopes)
            .field("outputs", &self.outputs.len())
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}
