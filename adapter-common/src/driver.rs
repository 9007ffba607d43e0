//! The driver: one task owning the [`ServerCore`], the loop that moves bytes
//! between it and the world and decides nothing.
//!
//! Each turn: wait for an input or the core's deadline; report the wall
//! clock and what the writers flushed; hand the core that input and
//! whatever else is already queued (up to a batch); carry out every output
//! (frames to connection outboxes, answers to waiting requests, persist and
//! reload jobs to a blocking thread, commands to the broker link, messages
//! and closes to the application's hooks); re-arm the timer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::{Either, select};
use live_core::SessionId;
use server_core::{
    BackplaneCommand, Body, HttpSync, Notice, Output, PersistFailure, RefreshRefused, Reloaded,
    ServerCore, ServerError, Ticket,
};
use sync_core::{App, RequestId, Response, Store, Timestamp};

use crate::handle::ServerHandle;
use crate::hooks::{HookPolicy, Hooks, MessageCtx};
use crate::inbox::{Call, HttpSyncInput, Input, Persisted, Reply, SyncBody};
use crate::outbox::{Conn, FlushBoard, Outbound};
use crate::runtime::{Clock, Runtime};

/// Inputs handled per turn before the outputs are carried out.
const INPUT_BATCH: usize = 512;

/// The server core of a driver.
pub(crate) type Core<H, A> = ServerCore<<H as Hooks>::User, HookPolicy<H>, A>;

/// The driver task's state. Built by [`crate::Server::start`]; runs until
/// every handle is gone or a shutdown completes.
pub(crate) struct Driver<R: Runtime, H: Hooks, A: App, S> {
    pub(crate) rt: R,
    pub(crate) hooks: Arc<H>,
    pub(crate) core: Core<H, A>,
    pub(crate) store: Arc<Mutex<S>>,
    /// The store never blocks ([`Store::blocks`]): its jobs run in place.
    pub(crate) inline_jobs: bool,
    /// A weak sender to our own inbox: jobs report through it, and message
    /// hooks get a handle from it, without keeping the inbox open.
    pub(crate) weak: async_channel::WeakSender<Input<H::User>>,
    pub(crate) flushes: Arc<FlushBoard>,
    /// The runtime's clocks, for the handles given to message hooks.
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) flushes_read: Vec<(SessionId, usize, usize)>,
    pub(crate) conns: HashMap<SessionId, Conn>,
    pub(crate) answers: HashMap<RequestId, Reply<Response>>,
    pub(crate) tickets: HashMap<Ticket, Reply<Result<(), ServerError>>>,
    pub(crate) broker: Option<async_channel::Sender<BackplaneCommand>>,
    pub(crate) shutdown: Vec<Reply<()>>,
}

impl<R, H, A, S> Driver<R, H, A, S>
where
    R: Runtime,
    H: Hooks,
    A: App + Send + 'static,
    A::State: Send,
    S: Store + Send + 'static,
{
    /// Runs until the inbox closes or a shutdown completes.
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
            self.core.handle_wall_clock(now, wall_clock(&self.rt));
            self.read_flushes(now);
            match woke {
                Some(Ok(input)) => {
                    self.handle(now, input);
                    for _ in 0..INPUT_BATCH {
                        match inbox.try_recv() {
                            Ok(input) => {
                                // Writers keep flushing during a long batch:
                                // the hub judges each input against queue
                                // depths as fresh as they can be.
                                self.read_flushes(now);
                                self.handle(now, input);
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(Err(_)) => {
                    // Nobody can reach the server any more: close what is left.
                    self.core.handle_shutdown(now);
                    self.carry_out(now);
                    break;
                }
                None => {
                    armed = None;
                    self.core.handle_timeout(now);
                }
            }
            if self.carry_out(now) {
                for done in self.shutdown.drain(..) {
                    let _ = done.try_send(());
                }
                break;
            }
            let replaying = self.core.hub().backlogged_sessions() > 0;
            if self.flushes.set_wanted(replaying)
                && let Some(inbox) = self.weak.upgrade()
            {
                // Reports came in during this turn and woke nobody.
                let _ = inbox.try_send(Input::Flushes);
            }
            let want = self.core.poll_timeout().map(|(at, _)| at);
            if armed != Some(want) {
                timer = Box::pin(self.rt.sleep_until(want.unwrap_or_else(|| far(now))));
                armed = Some(want);
            }
        }
    }

    /// Hands the core every flush report posted since the last turn.
    fn read_flushes(&mut self, now: Instant) {
        self.flushes.read(&mut self.flushes_read);
        for (id, messages, bytes) in self.flushes_read.drain(..) {
            self.core.handle_flushed(now, id, messages, bytes);
        }
    }

    fn handle(&mut self, now: Instant, input: Input<H::User>) {
        let core = &mut self.core;
        match input {
            Input::Open {
                user,
                conn,
                local,
                reply,
            } => {
                let id = if local {
                    core.handle_open_local(now, user)
                } else {
                    core.handle_open(now, user)
                };
                self.conns.insert(id, conn);
                let _ = reply.try_send(id);
            }
            Input::Frame { id, frame } => core.handle_frame(now, id, frame),
            Input::TransportClosed { id } => core.handle_transport_closed(now, id),
            Input::PeerFault { id, fault } => core.handle_peer_fault(now, id, fault),
            Input::HttpSync(input) => {
                let HttpSyncInput {
                    user,
                    method,
                    path,
                    query,
                    body,
                    reply,
                } = *input;
                let body = match &body {
                    SyncBody::Read(bytes) => Body::Read(bytes),
                    SyncBody::TooLarge { limit } => Body::TooLarge { limit: *limit },
                    SyncBody::Unreadable(message) => Body::Unreadable { message },
                };
                let request = HttpSync {
                    method: method.as_str(),
                    path: &path,
                    query: &query,
                    body,
                };
                let id = core.handle_http_sync(now, &user, request);
                self.answers.insert(id, reply);
            }
            Input::Sync { request, reply } => {
                let id = core.handle_sync_request(now, request);
                self.answers.insert(id, reply);
            }
            Input::Persisted(report) => {
                let Persisted {
                    number,
                    result,
                    took,
                } = *report;
                if let Err(e) = core.handle_persisted(now, number, result, took) {
                    tracing::error!(error = %e, "persist report refused");
                }
            }
            Input::Reloaded(reloaded) => core.handle_reloaded(now, *reloaded),
            Input::StoreNotice(scope) => core.handle_store_notice(now, scope),
            Input::BrokerAttach { commands } => {
                self.broker = Some(commands);
                core.handle_broker_attached(now);
            }
            Input::BrokerMessage { topic, data } => core.handle_broker_message(now, &topic, &data),
            Input::BrokerRestored => core.handle_broker_restored(now),
            Input::BrokerConnection(connected) => core.handle_broker_connection(now, connected),
            Input::BrokerNumbered(n) => {
                core.handle_broker_numbered(now, &n.topic, &n.epoch, n.offset, &n.data)
            }
            Input::BrokerAppendFailed { topic, data } => {
                core.handle_broker_append_failed(now, &topic, &data)
            }
            Input::HistoryRead { request, read } => core.handle_history_read(now, request, read),
            Input::BrokerPresence(change) => {
                let (topic, member, joined) = *change;
                core.handle_broker_presence(now, &topic, &member, joined)
            }
            Input::PresenceRead { request, members } => {
                core.handle_presence_members(now, request, members)
            }
            Input::Call(call) => self.call(*call),
            // The board was read at the start of the turn.
            Input::Flushes => {}
            Input::Shutdown { done } => {
                self.shutdown.push(done);
                if core.is_stopped() {
                    for done in self.shutdown.drain(..) {
                        let _ = done.try_send(());
                    }
                } else {
                    core.handle_shutdown(now);
                }
            }
        }
    }

    fn call(&mut self, call: Call) {
        let core = &mut self.core;
        match call {
            Call::Publish { topic, data, reply } => {
                let _ = reply.try_send(core.publish(&topic, data));
            }
            Call::Send {
                to,
                topic,
                data,
                reply,
            } => {
                let _ = reply.try_send(core.send(to, &topic, &data));
            }
            Call::Close {
                id,
                code,
                reason,
                reply,
            } => {
                let _ = reply.try_send(core.close(id, code, &reason));
            }
            Call::Subscribe { id, topic, reply } => {
                let _ = reply.try_send(core.subscribe(id, &topic));
            }
            Call::Unsubscribe { id, topic, reply } => {
                let _ = reply.try_send(core.unsubscribe(id, &topic));
            }
            Call::SessionCount { reply } => {
                let _ = reply.try_send(core.hub().session_count());
            }
            Call::Trim {
                scope,
                before,
                reply,
            } => match core.trim(&scope, before) {
                Ok(ticket) => {
                    self.tickets.insert(ticket, reply);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(e));
                }
            },
            Call::Metrics { reply } => {
                let _ = reply.try_send(core.metrics());
            }
        }
    }

    /// Carries out every output of the core. Returns true once the core has
    /// stopped.
    fn carry_out(&mut self, now: Instant) -> bool {
        let mut stopped = false;
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Send { id, frame } => {
                    if let Some(conn) = self.conns.get(&id) {
                        conn.outbox.push(Outbound::Frame(frame));
                    }
                }
                Output::Close { id, code, reason } => {
                    if let Some(conn) = self.conns.get(&id) {
                        conn.outbox.push(Outbound::Close { code, reason });
                        conn.outbox.kill();
                    }
                }
                Output::Closed { id, reason, user } => {
                    self.conns.remove(&id);
                    self.hooks.on_close(id, user.as_ref(), &reason);
                }
                Output::Message { id, topic, data } => self.on_message(now, id, &topic, &data),
                Output::Answer { request, response } => {
                    if let Some(reply) = self.answers.remove(&request) {
                        let _ = reply.try_send(response);
                    }
                }
                Output::Persist(job) => {
                    let number = job.number;
                    let clock = self.rt.clone();
                    let panicked = move || {
                        Input::Persisted(Box::new(Persisted {
                            number,
                            result: Err(PersistFailure::other("store job panicked")),
                            took: Duration::ZERO,
                        }))
                    };
                    self.spawn_job(panicked, move |store: &mut S| {
                        let started = clock.now();
                        let result = server_core::jobs::persist(store, &job);
                        let took = clock.now().saturating_duration_since(started);
                        Input::Persisted(Box::new(Persisted {
                            number,
                            result,
                            took,
                        }))
                    });
                }
                Output::Reload(job) => {
                    let panicked = || {
                        Input::Reloaded(Box::new(Reloaded {
                            error: Some("reload job panicked".into()),
                            ..Reloaded::default()
                        }))
                    };
                    self.spawn_job(panicked, move |store: &mut S| {
                        Input::Reloaded(Box::new(server_core::jobs::reload(store, &job)))
                    });
                }
                Output::Broker(command) => {
                    if let Some(broker) = &self.broker
                        && let Err(e) = broker.try_send(command)
                    {
                        tracing::warn!(
                            "broker link not keeping up or gone; a backplane command was dropped"
                        );
                        // What waits for an answer gets one: an append is
                        // delivered here only, a read fails.
                        let answer = match e.into_inner() {
                            BackplaneCommand::Append { topic, data, .. } => {
                                Some(Input::BrokerAppendFailed { topic, data })
                            }
                            BackplaneCommand::ReadHistory { request, .. } => {
                                Some(Input::HistoryRead {
                                    request,
                                    read: None,
                                })
                            }
                            BackplaneCommand::ReadPresence { request, .. } => {
                                Some(Input::PresenceRead {
                                    request,
                                    members: None,
                                })
                            }
                            _ => None,
                        };
                        if let Some(answer) = answer
                            && let Some(inbox) = self.weak.upgrade()
                        {
                            self.rt.spawn(async move {
                                let _ = inbox.send(answer).await;
                            });
                        }
                    }
                }
                Output::Done { ticket, result } => {
                    if let Some(reply) = self.tickets.remove(&ticket) {
                        let _ = reply.try_send(result);
                    }
                }
                Output::Refresh { id, token } => {
                    let result = self.hooks.refresh(&token).map_err(|r| {
                        if r.code == "token_expired" {
                            RefreshRefused::Expired(r.message)
                        } else {
                            RefreshRefused::Unauthorized(r.message)
                        }
                    });
                    self.core.handle_refresh(now, id, result);
                }
                Output::Notice(notice) => log_notice(&notice),
                Output::Stopped => stopped = true,
                _ => {}
            }
        }
        stopped
    }

    fn on_message(&mut self, now: Instant, id: SessionId, topic: &str, data: &Bytes) {
        let user = self.core.hub().auth(id).cloned();
        let (Some(user), Some(inbox)) = (user, self.weak.upgrade()) else {
            return;
        };
        let server = ServerHandle {
            inbox,
            flushes: self.flushes.clone(),
            clock: self.clock.clone(),
        };
        let mut ctx = MessageCtx {
            server_core: &mut self.core,
            server: &server,
            now,
            session: id,
            user: &user,
            topic,
            data,
        };
        self.hooks.on_message(&mut ctx);
    }

    /// Runs a store job and feeds its report back in (`panicked()` if the
    /// job panicked on a blocking thread): in place for a store that never
    /// blocks, else on a blocking thread.
    fn spawn_job<F, P>(&mut self, panicked: P, job: F)
    where
        F: FnOnce(&mut S) -> Input<H::User> + Send + 'static,
        P: FnOnce() -> Input<H::User> + Send + 'static,
    {
        if self.inline_jobs {
            let report = {
                let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
                job(&mut store)
            };
            let now = self.rt.now();
            self.handle(now, report);
            return;
        }
        let Some(inbox) = self.weak.upgrade() else {
            return;
        };
        let store = self.store.clone();
        let work = self.rt.spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            job(&mut store)
        });
        self.rt.spawn(async move {
            let report = work.await.unwrap_or_else(panicked);
            let _ = inbox.send(report).await;
        });
    }
}

/// Wall time now, as the core stamps changes with it.
fn wall_clock<R: Runtime>(rt: &R) -> Timestamp {
    let millis = rt
        .wall_clock()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Timestamp::from_millis(millis)
}

fn log_notice(notice: &Notice) {
    match notice {
        // Routine on a shared store: another node wrote first, and the
        // batch is computed again while the store holds the scopes.
        Notice::PersistFailed { stale: true, .. } => tracing::debug!("{notice}"),
        Notice::ReloadRefused { .. } => tracing::info!("{notice}"),
        // Nobody was answered an error (yet): a failed second try is
        // logged as an error.
        Notice::PersistRetried { .. } => tracing::warn!("{notice}"),
        Notice::PersistFailed { .. } => tracing::error!("{notice}"),
        _ => tracing::warn!("{notice}"),
    }
}
