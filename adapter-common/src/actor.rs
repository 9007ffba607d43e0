//! The hub actor: one task owning the `live_core::Hub` and the
//! `sync_core::Engine`. Everything else (connections, HTTP handlers,
//! application code) talks to it through its inbox, so the cores need no lock
//! and see every input in one order.
//!
//! Each turn: wait for an input or the hub's timer; handle that input and
//! whatever else is already queued (up to a batch); then [`Actor::pump`]:
//! route hub actions to connections, answer hub events (authorization,
//! application messages, `_sync` operations, closes), release engine outputs
//! (push answers, pokes published on `sync:<scope>`), and start persisting
//! the next batch if the store is idle; finally re-arm the timer.
//!
//! # Persistence (group commit)
//!
//! At most one batch is being persisted, on a blocking thread
//! ([`Runtime::spawn_blocking`]). Pushes arriving meanwhile gather in the
//! engine's open batch; when the store reports back, the actor `advance`s and
//! hands out the next batch at once, however many pushes it holds. Nothing is
//! answered, published or poked before its batch is durable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::{Either, select};
use live_core::{
    Action, AuthorizeRequest, Authorizer, Command, Decision, Event, Frame, Hub, OutFrame,
    SessionId, sync_scope,
};
use serde_json::Value;
use sync_core::handler::{WS_TOPIC, WsRequest, encode_ws_response, parse_ws_request};
use sync_core::store::{ScopeUpdate, refresh_scope};
use sync_core::{
    App, Engine, Mutation, Output, RequestId, Response, Store, SyncRequest, Timestamp,
};

use crate::handle::{ServerError, ServerHandle};
use crate::hooks::{Hooks, MessageCtx};
use crate::metrics::{MetricsSnapshot, SyncMetrics};
use crate::outbox::{FlushBoard, Outbox};
use crate::runtime::Runtime;

/// Inputs handled per turn before the outputs are pumped.
const INPUT_BATCH: usize = 512;

/// What the actor keeps of one connection: where its frames go, and how to
/// tell it to end even if its writer is stuck on a socket that does not drain.
pub(crate) struct Conn {
    pub(crate) outbox: Arc<Outbox>,
}

impl Drop for Conn {
    /// The actor forgot the session (closed, or the actor stopped): the
    /// writer finishes what is queued and ends.
    fn drop(&mut self) {
        self.outbox.close();
    }
}

/// One item for a connection's writer.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Write this frame.
    Frame(OutFrame),
    /// Write a close frame, then stop writing.
    Close { code: u16, reason: String },
}

type HubCall<U> = Box<dyn FnOnce(Instant, &mut Hub<U>) + Send>;

/// A message into the actor.
pub(crate) enum Input<U> {
    Open {
        user: U,
        conn: Conn,
        reply: async_channel::Sender<SessionId>,
    },
    Frame {
        id: SessionId,
        frame: Frame,
    },
    TransportClosed {
        id: SessionId,
    },
    /// The WebSocket library refused what the peer sent (too big, invalid
    /// UTF-8, broken framing) before the hub could see it.
    PeerFault {
        id: SessionId,
        code: u16,
        reason: &'static str,
    },
    Hub(HubCall<U>),
    Sync {
        request: SyncRequest,
        reply: async_channel::Sender<Response>,
    },
    Trim {
        scope: String,
        before: u64,
        reply: async_channel::Sender<Result<(), ServerError>>,
    },
    Metrics {
        reply: async_channel::Sender<MetricsSnapshot>,
    },
    Persisted {
        number: u64,
        result: Result<(), Failure>,
        seconds: f64,
        changes: usize,
    },
    Shutdown {
        done: async_channel::Sender<()>,
    },
    /// Another node committed to this scope (`None`: maybe to any scope).
    Refresh {
        scope: Option<String>,
    },
    /// A broker link attached itself: backplane commands go to it.
    AttachBackplane {
        commands: async_channel::Sender<crate::backplane::BackplaneCommand>,
    },
    /// A server-side publish: local subscribers and the backplane.
    Publish {
        topic: String,
        data: Bytes,
        reply: async_channel::Sender<Result<usize, live_core::HubError>>,
    },
    /// A publish from another node, to deliver to local subscribers only.
    Remote {
        topic: String,
        data: Bytes,
    },
    /// Scopes reloaded from a shared store.
    Refreshed {
        loaded: Vec<ScopeUpdate>,
        error: Option<String>,
    },
}

/// Why a batch was not persisted, and what the actor needs to recover.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    /// The store could not be reached: answer 503.
    pub(crate) unavailable: bool,
    /// Scopes another node changed, reloaded right after the refusal.
    pub(crate) reloaded: Vec<ScopeUpdate>,
}

impl Failure {
    fn plain(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            unavailable: false,
            reloaded: Vec::new(),
        }
    }
}

/// Who waits for a push answer.
pub(crate) enum Waiter {
    Http(async_channel::Sender<Response>),
    Ws { session: SessionId, rid: Value },
}

type TrimReply = async_channel::Sender<Result<(), ServerError>>;

/// The live authorizer backed by the application's hooks: ordinary topics by
/// [`Hooks::authorize_topic`], `sync:<scope>` subscriptions by
/// [`Hooks::authorize_scope`] (allowed only when the scope maps to itself).
pub(crate) struct HookAuthorizer<H>(pub(crate) Arc<H>);

impl<H: Hooks> Authorizer<H::User> for HookAuthorizer<H> {
    fn authorize_topic(&mut self, request: &AuthorizeRequest<'_, H::User>) -> Decision {
        if self
            .0
            .authorize_topic(request.auth, request.topic, request.command)
        {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }

    fn authorize_scope(&mut self, request: &AuthorizeRequest<'_, H::User>) -> Decision {
        match request.scope() {
            Some(scope) if scope_maps_to_itself(&*self.0, request.auth, scope) => Decision::Allow,
            _ => Decision::Deny,
        }
    }
}

fn scope_maps_to_itself<H: Hooks>(hooks: &H, user: &H::User, scope: &str) -> bool {
    matches!(hooks.authorize_scope(user, scope), Ok(s) if s == scope)
}

/// The hub actor. Built by [`crate::Server::start`]; runs until every handle
/// is gone or a shutdown completes.
pub(crate) struct Actor<R: Runtime, H: Hooks, P: App, S> {
    pub(crate) rt: R,
    pub(crate) hooks: Arc<H>,
    pub(crate) hub: Hub<H::User>,
    pub(crate) engine: Engine<P>,
    pub(crate) store: Arc<Mutex<S>>,
    pub(crate) sync_limits: sync_core::Limits,
    /// A weak sender to our own inbox: persistence jobs report through it, and
    /// `on_message` hooks get a handle from it, without keeping the inbox open.
    pub(crate) weak: async_channel::WeakSender<Input<H::User>>,
    pub(crate) conns: HashMap<SessionId, Conn>,
    pub(crate) waiters: HashMap<RequestId, Waiter>,
    pub(crate) next_request: u64,
    pub(crate) persisting: Option<u64>,
    /// Trims whose batch was not handed out yet.
    pub(crate) trims_open: Vec<TrimReply>,
    /// Trims waiting for batch `.0` to be durable.
    pub(crate) trims_batched: Vec<(u64, TrimReply)>,
    pub(crate) metrics: SyncMetrics,
    pub(crate) shutdown: Option<Vec<async_channel::Sender<()>>>,
    /// The store is shared with other nodes (see `shared_store.rs`).
    pub(crate) shared: bool,
    /// Pushes in flight on a shared store, kept to push them again when
    /// their batch is refused as stale: mutations and attempts so far.
    pub(crate) retry: HashMap<RequestId, (Vec<Mutation>, u8)>,
    /// Scopes to reload because other nodes committed to them.
    pub(crate) refresh: crate::shared_store::Refresh,
    /// Scopes whose reload the engine refused; the store is told before its
    /// next job (see `shared_store.rs`).
    pub(crate) forget: Vec<String>,
    /// The broker backplane, once a link attached itself.
    pub(crate) backplane: Option<crate::backplane::Backplane>,
    /// Flush reports posted by writers, and a spare vector to swap it with.
    pub(crate) flushes: FlushBoard,
    pub(crate) flushes_read: Vec<(SessionId, usize, usize)>,
}

impl<R, H, P, S> Actor<R, H, P, S>
where
    R: Runtime,
    H: Hooks,
    P: App + Send + 'static,
    P::State: Send,
    S: Store + Send + 'static,
{
    /// Runs the actor until its inbox closes or a shutdown completes.
    pub(crate) async fn run(mut self, inbox: async_channel::Receiver<Input<H::User>>) {
        let far = |now: Instant| now + Duration::from_secs(3600);
        // `Some(deadline)`: the timer is armed for that deadline (`None`:
        // parked far away); `None`: it fired and must be re-armed.
        let mut armed: Option<Option<Instant>> = Some(None);
        let mut timer = Box::pin(self.rt.sleep_until(far(self.rt.now())));
        loop {
            let woke = {
                let recv = std::pin::pin!(inbox.recv());
                match select(recv, timer.as_mut()).await {
                    Either::Left((received, _)) => Some(received),
                    Either::Right(((), _)) => None,
                }
            };
            let now = self.rt.now();
            self.read_flushes(now);
            match woke {
                Some(Ok(input)) => {
                    self.handle(now, input);
                    for _ in 0..INPUT_BATCH {
                        match inbox.try_recv() {
                            Ok(input) => self.handle(now, input),
                            Err(_) => break,
                        }
                    }
                }
                Some(Err(_)) => {
                    // Nobody can reach the server any more: close what is left.
                    self.hub.shutdown(now);
                    self.pump(now);
                    break;
                }
                None => {
                    armed = None;
                    self.hub.handle_timeout(now);
                }
            }
            self.pump(now);
            if self.shutdown_complete() {
                break;
            }
            let want = self.hub.poll_timeout().map(|(at, _)| at);
            if armed != Some(want) {
                timer = Box::pin(self.rt.sleep_until(want.unwrap_or_else(|| far(now))));
                armed = Some(want);
            }
        }
    }

    /// Hands the hub every flush report posted since the last turn.
    fn read_flushes(&mut self, now: Instant) {
        {
            let mut board = self.flushes.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut *board, &mut self.flushes_read);
        }
        for (id, messages, bytes) in self.flushes_read.drain(..) {
            if let Err(e) = self.hub.handle_flushed(now, id, messages, bytes) {
                tracing::warn!(error = %e, "flush report refused");
            }
        }
    }

    /// True (and the shutdown callers told) once a requested shutdown has
    /// nothing left to persist or answer.
    fn shutdown_complete(&mut self) -> bool {
        if self.shutdown.is_none() || self.persisting.is_some() || self.engine.has_ready() {
            return false;
        }
        for done in self.shutdown.take().unwrap_or_default() {
            let _ = done.try_send(());
        }
        true
    }

    fn handle(&mut self, now: Instant, input: Input<H::User>) {
        match input {
            Input::Open { user, conn, reply } => {
                let id = self.hub.handle_open_authenticated(now, user);
                self.conns.insert(id, conn);
                let _ = reply.try_send(id);
            }
            Input::Frame { id, frame } => self.hub.handle_frame(now, id, frame),
            Input::TransportClosed { id } => self.hub.handle_transport_closed(now, id),
            Input::PeerFault { id, code, reason } => {
                let _ = self.hub.close(id, code, reason);
            }
            Input::Hub(call) => call(now, &mut self.hub),
            Input::Sync { request, reply } => {
                let (request_id, response) = self.run_sync(request);
                match response {
                    Some(response) => {
                        self.count_response(&response);
                        let _ = reply.try_send(response);
                    }
                    None => {
                        self.waiters.insert(request_id, Waiter::Http(reply));
                    }
                }
            }
            Input::Trim {
                scope,
                before,
                reply,
            } => match self.engine.trim(&scope, before) {
                Ok(()) => self.trims_open.push(reply),
                Err(e) => {
                    let _ = reply.try_send(Err(e.into()));
                }
            },
            Input::Metrics { reply } => {
                let mut sync = self.metrics;
                sync.scopes = self.engine.scopes().count() as u64;
                let _ = reply.try_send(MetricsSnapshot::new(self.hub.metrics(), sync));
            }
            Input::Persisted {
                number,
                result,
                seconds,
                changes,
            } => self.finish_persist(number, result, seconds, changes),
            Input::Shutdown { done } => {
                self.hub.shutdown(now);
                self.shutdown.get_or_insert_with(Vec::new).push(done);
            }
            Input::Refresh { scope } => self.refresh.want(scope),
            Input::AttachBackplane { commands } => {
                self.backplane = Some(crate::backplane::Backplane {
                    commands,
                    interest: Default::default(),
                });
            }
            Input::Publish { topic, data, reply } => {
                let result = self.hub.publish(&topic, &data);
                if let (Ok(_), Some(b)) = (&result, &self.backplane)
                    && !crate::backplane::is_local_only(&topic)
                {
                    b.send(crate::backplane::BackplaneCommand::Publish { topic, data });
                }
                let _ = reply.try_send(result);
            }
            Input::Remote { topic, data } => {
                if let Err(e) = self.hub.publish(&topic, &data) {
                    tracing::warn!(error = %e, %topic, "publish from another node refused");
                }
            }
            Input::Refreshed { loaded, error } => self.finish_refresh(loaded, error),
        }
    }

    /// Drains the cores until neither has anything left to say.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(action) = self.hub.poll_action() {
                busy = true;
                self.route(action);
            }
            while let Some(event) = self.hub.poll_event() {
                busy = true;
                self.on_event(now, event);
            }
            while let Some(output) = self.engine.poll_output() {
                busy = true;
                self.on_output(output);
            }
            if self.persisting.is_none() && !self.refresh.running && self.refresh.wanted() {
                busy = true;
                self.start_refresh();
            }
            if self.persisting.is_none() && !self.refresh.running && self.engine.has_ready() {
                busy = true;
                self.start_persist();
            }
            if !busy {
                break;
            }
        }
        if let Some(backplane) = &mut self.backplane {
            backplane.flush();
        }
        if self.persisting.is_none() {
            // Trims that reached no batch changed nothing: they are done.
            for reply in self.trims_open.drain(..) {
                let _ = reply.try_send(Ok(()));
            }
        }
    }

    fn route(&mut self, action: Action) {
        match action {
            Action::Send { id, frame } => {
                if let Some(conn) = self.conns.get(&id) {
                    conn.outbox.push(Outbound::Frame(frame));
                }
            }
            Action::Close { id, code, reason } => {
                if let Some(conn) = self.conns.get(&id) {
                    conn.outbox.push(Outbound::Close { code, reason });
                    conn.outbox.kill();
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, event: Event<H::User>) {
        match event {
            Event::Authorize {
                ticket,
                id,
                command,
                topic,
            } => {
                // Our authorizer never asks, but answer anyway rather than let
                // the session wait for the deadline.
                let allowed = self
                    .hub
                    .auth(id)
                    .is_some_and(|user| match sync_scope(&topic) {
                        Some(_) if command == Command::Unsubscribe => true,
                        Some(scope) => scope_maps_to_itself(&*self.hooks, user, scope),
                        None => self.hooks.authorize_topic(user, &topic, command),
                    });
                self.hub.handle_authorize(now, ticket, allowed);
            }
            Event::Message { id, topic, data } => {
                if topic == WS_TOPIC {
                    self.ws_sync(id, &data);
                } else {
                    self.on_message(now, id, &topic, &data);
                }
            }
            Event::Closed { id, reason, auth } => {
                self.conns.remove(&id);
                self.hooks.on_close(id, auth.as_ref(), &reason);
            }
            Event::TopicActive { topic } => {
                if let Some(b) = &mut self.backplane {
                    b.interest.active(topic);
                }
            }
            Event::TopicInactive { topic } => {
                if let Some(b) = &mut self.backplane {
                    b.interest.inactive(topic);
                }
            }
            Event::Published { topic, data, .. } => {
                if let Some(b) = &self.backplane
                    && !crate::backplane::is_local_only(&topic)
                {
                    b.send(crate::backplane::BackplaneCommand::Publish { topic, data });
                }
            }
            // Sessions are opened authenticated.
            _ => {}
        }
    }

    fn on_message(&mut self, now: Instant, id: SessionId, topic: &str, data: &Bytes) {
        let (Some(user), Some(inbox)) = (self.hub.auth(id).cloned(), self.weak.upgrade()) else {
            return;
        };
        let server = ServerHandle {
            inbox,
            flushes: self.flushes.clone(),
        };
        let mut ctx = MessageCtx {
            hub: &mut self.hub,
            server: &server,
            now,
            session: id,
            user: &user,
            topic,
            data,
        };
        self.hooks.on_message(&mut ctx);
    }

    /// A sync operation over the WebSocket: same parsing, authorization and
    /// engine as HTTP, answered to the sender on `_sync`.
    fn ws_sync(&mut self, id: SessionId, data: &Bytes) {
        let value: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
        let (rid, response) = match parse_ws_request(&value, data.len(), &self.sync_limits) {
            Err(failed) => failed,
            Ok(WsRequest { rid, mut request }) => {
                let Some(user) = self.hub.auth(id).cloned() else {
                    return;
                };
                let hooks = &self.hooks;
                match request.authorize_scopes(|claimed| hooks.authorize_scope(&user, claimed)) {
                    Err(refused) => (rid, refused),
                    Ok(()) => match self.run_sync(request) {
                        (_, Some(response)) => (rid, response),
                        (request_id, None) => {
                            self.waiters
                                .insert(request_id, Waiter::Ws { session: id, rid });
                            return;
                        }
                    },
                }
            }
        };
        self.count_response(&response);
        let frame = Bytes::from(encode_ws_response(&rid, &response));
        let _ = self.hub.send_raw(id, frame);
    }

    /// Hands an authorized request to the engine.
    fn run_sync(&mut self, request: SyncRequest) -> (RequestId, Option<Response>) {
        match &request {
            SyncRequest::Push(p) => {
                self.metrics.pushes += 1;
                self.metrics.mutations += p.mutations.len() as u64;
            }
            SyncRequest::Pull(_) => self.metrics.pulls += 1,
            SyncRequest::Snapshot(_) => self.metrics.snapshots += 1,
        }
        self.next_request += 1;
        let request_id = RequestId(self.next_request);
        if let (true, SyncRequest::Push(p)) = (self.shared, &request) {
            self.retry.insert(request_id, (p.mutations.clone(), 0));
        }
        let response = self
            .engine
            .handle_request(wall_clock(), request_id, request);
        (request_id, response)
    }

    fn count_response(&mut self, response: &Response) {
        if !response.is_success() {
            self.metrics.errors += 1;
        }
    }

    pub(crate) fn on_output(&mut self, output: Output) {
        if let Some((topic, data)) = output.poke_message() {
            self.metrics.pokes += 1;
            if let Err(e) = self.hub.publish(&topic, data.as_bytes()) {
                tracing::warn!(error = %e, %topic, "poke not published");
            }
            return;
        }
        let Output::Response {
            request_id,
            response,
        } = output
        else {
            return;
        };
        self.count_response(&response);
        self.retry.remove(&request_id);
        match self.waiters.remove(&request_id) {
            Some(Waiter::Http(reply)) => {
                let _ = reply.try_send(response);
            }
            Some(Waiter::Ws { session, rid }) => {
                let frame = Bytes::from(encode_ws_response(&rid, &response));
                let _ = self.hub.send_raw(session, frame);
            }
            None => tracing::warn!(?request_id, "push answer with nobody waiting"),
        }
    }

    /// Hands the engine's open batch to the store on a blocking thread.
    fn start_persist(&mut self) {
        let Some(ready) = self.engine.poll_ready() else {
            return;
        };
        let number = ready.number;
        for reply in self.trims_open.drain(..) {
            self.trims_batched.push((number, reply));
        }
        if ready.persist.is_empty() {
            // Only answers (replays) to release: nothing to write.
            self.finish_persist(number, Ok(()), 0.0, 0);
            return;
        }
        let Some(inbox) = self.weak.upgrade() else {
            self.finish_persist(number, Err(Failure::plain("server stopped")), 0.0, 0);
            return;
        };
        self.persisting = Some(number);
        let changes = ready.persist.changes.len();
        let store = self.store.clone();
        let clock = self.rt.clone();
        let forget = std::mem::take(&mut self.forget);
        // Where the engine's durable records of each scope the batch locks
        // end (they do not move while it is outstanding), so a scope refused
        // as stale is read from there on. Only a shared store refuses.
        let marks = if self.shared {
            crate::shared_store::marks(&self.engine, &ready.persist)
        } else {
            Default::default()
        };
        let job = self.rt.spawn_blocking(move || {
            let started = clock.now();
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            for scope in &forget {
                store.forget_scope(scope);
            }
            let result = store.persist(&ready.persist).map_err(|e| {
                // Reload what another node changed while still holding the
                // store, so no batch of ours slips in between.
                let reloaded = S::stale_scopes(&e)
                    .into_iter()
                    .filter_map(|scope| {
                        let held = marks.get(&scope).copied().flatten();
                        match refresh_scope(&mut *store, &scope, held) {
                            Ok(update) => Some(update),
                            Err(e) => {
                                tracing::warn!(error = %e, %scope, "reloading a stale scope failed");
                                None
                            }
                        }
                    })
                    .collect();
                Failure {
                    message: e.to_string(),
                    unavailable: S::is_unavailable(&e),
                    reloaded,
                }
            });
            (result, clock.now().duration_since(started).as_secs_f64())
        });
        self.rt.spawn(async move {
            let (result, seconds) = job
                .await
                .unwrap_or_else(|| (Err(Failure::plain("store job panicked")), 0.0));
            let _ = inbox
                .send(Input::Persisted {
                    number,
                    result,
                    seconds,
                    changes,
                })
                .await;
        });
    }

    fn finish_persist(
        &mut self,
        number: u64,
        result: Result<(), Failure>,
        seconds: f64,
        changes: usize,
    ) {
        self.persisting = None;
        self.metrics.persist_seconds += seconds;
        let outcome = match result {
            Ok(()) => {
                if let Err(e) = self.engine.advance(number) {
                    tracing::error!(error = %e, "advance refused");
                }
                self.metrics.batches += 1;
                self.metrics.changes += changes as u64;
                Ok(())
            }
            Err(failure) => {
                if failure.reloaded.is_empty() {
                    tracing::error!(error = %failure.message, batch = number, "persisting a batch failed");
                } else {
                    tracing::info!(error = %failure.message, batch = number, "batch refused: another node wrote its scopes; reloaded, pushing again");
                }
                self.metrics.persist_failures += 1;
                let message = failure.message.clone();
                self.after_failed_batch(number, failure);
                Err(ServerError::Store(message))
            }
        };
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.trims_batched)
            .into_iter()
            .partition(|(n, _)| *n == number);
        self.trims_batched = waiting;
        for (_, reply) in done {
            let _ = reply.try_send(outcome.clone());
        }
    }
}

/// Wall-clock time written into the changes a push creates.
pub(crate) fn wall_clock() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Timestamp::from_millis(millis)
}
