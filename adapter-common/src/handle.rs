//! [`ServerHandle`]: how application code and the transport loops reach the
//! server. Every call is one message into the driver's inbox; the driver
//! hands it to the server core and sends the result back.

use std::sync::Arc;

use bytes::Bytes;
use live_core::{Frame, PeerFault, SessionId};
use sync_core::SyncRequest;

use crate::inbox::{Call, HttpSyncInput, Input, Reply, SyncBody};
use crate::metrics::MetricsSnapshot;
use crate::outbox::{Conn, FlushBoard};
use crate::runtime::Clock;

use server_core::{BackplaneCommand, ServerError};

/// A cheap, cloneable handle on a running server: server-side publish, send,
/// close, subscribe, trim, metrics and shutdown.
pub struct ServerHandle<U> {
    pub(crate) inbox: async_channel::Sender<Input<U>>,
    pub(crate) flushes: Arc<FlushBoard>,
    /// The server's runtime clock.
    pub(crate) clock: Arc<dyn Clock>,
}

impl<U> Clone for ServerHandle<U> {
    fn clone(&self) -> Self {
        Self {
            inbox: self.inbox.clone(),
            flushes: self.flushes.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<U> std::fmt::Debug for ServerHandle<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl<U> ServerHandle<U> {
    /// The server's current instant, from its runtime: code running beside
    /// the server (a broker link) measures time with this, so a runtime
    /// with a paused or simulated clock governs it too.
    pub fn now(&self) -> std::time::Instant {
        self.clock.now()
    }

    /// The server's wall-clock time, from its runtime.
    pub fn wall_clock(&self) -> std::time::SystemTime {
        self.clock.wall_clock()
    }
}

/// A reply slot and its receiving end.
fn reply<T>() -> (Reply<T>, async_channel::Receiver<T>) {
    async_channel::bounded(1)
}

impl<U: Send + 'static> ServerHandle<U> {
    pub(crate) async fn send_input(&self, input: Input<U>) -> Result<(), ServerError> {
        self.inbox
            .send(input)
            .await
            .map_err(|_| ServerError::Stopped)
    }

    /// Sends `input` built around a fresh reply slot and waits for the reply.
    async fn ask<T>(&self, input: impl FnOnce(Reply<T>) -> Input<U>) -> Result<T, ServerError> {
        let (tx, rx) = reply();
        self.send_input(input(tx)).await?;
        rx.recv().await.map_err(|_| ServerError::Stopped)
    }

    async fn call<T>(&self, call: impl FnOnce(Reply<T>) -> Call) -> Result<T, ServerError> {
        self.ask(|tx| Input::Call(Box::new(call(tx)))).await
    }

    /// Attaches a broker link: from now on the server sends it what the
    /// backplane needs (batched topic interest, local clients' publishes) on
    /// the returned receiver; the link delivers other nodes' publishes with
    /// [`ServerHandle::deliver_remote`]. The hub must have been configured
    /// with `backplane_events` (the `--broker` flag does it).
    pub async fn attach_backplane(
        &self,
    ) -> Result<async_channel::Receiver<BackplaneCommand>, ServerError> {
        let (commands, receiver) = async_channel::bounded(64 * 1024);
        self.send_input(Input::BrokerAttach { commands }).await?;
        Ok(receiver)
    }

    /// Delivers a publish from another node to this node's subscribers of
    /// `topic` (and to no broker).
    pub async fn deliver_remote(&self, topic: String, data: Bytes) -> Result<(), ServerError> {
        self.send_input(Input::BrokerMessage { topic, data }).await
    }

    /// Delivers a publication the broker numbered (`offset` within `epoch`)
    /// on a topic whose history it keeps, from any node, this one included,
    /// to this node's subscribers of `topic`.
    pub async fn deliver_numbered(
        &self,
        topic: String,
        epoch: String,
        offset: u64,
        data: Bytes,
    ) -> Result<(), ServerError> {
        self.send_input(Input::BrokerNumbered(Box::new(crate::inbox::Numbered {
            topic,
            epoch,
            offset,
            data,
        })))
        .await
    }

    /// The broker could not take a [`BackplaneCommand::Append`]: the
    /// publication is delivered to this node's subscribers only, without an
    /// offset.
    pub async fn append_failed(&self, topic: String, data: Bytes) -> Result<(), ServerError> {
        self.send_input(Input::BrokerAppendFailed { topic, data })
            .await
    }

    /// Answers a [`BackplaneCommand::ReadHistory`] (`None`: the broker could
    /// not be read).
    pub async fn history_read(
        &self,
        request: u64,
        read: Option<server_core::HistoryRead>,
    ) -> Result<(), ServerError> {
        self.send_input(Input::HistoryRead { request, read }).await
    }

    /// Another node's session joined (`joined`) or left `topic`: announced
    /// to this node's watchers of it.
    pub async fn deliver_presence(
        &self,
        topic: String,
        member: server_core::PresenceMember,
        joined: bool,
    ) -> Result<(), ServerError> {
        self.send_input(Input::BrokerPresence(Box::new((topic, member, joined))))
            .await
    }

    /// Answers a [`BackplaneCommand::ReadPresence`] (`None`: the broker
    /// could not be read).
    pub async fn presence_read(
        &self,
        request: u64,
        members: Option<Vec<server_core::PresenceMember>>,
    ) -> Result<(), ServerError> {
        self.send_input(Input::PresenceRead { request, members })
            .await
    }

    /// The broker link reconnected after losing its connection: the server
    /// asks again for every topic it has local subscribers for.
    pub async fn backplane_restored(&self) -> Result<(), ServerError> {
        self.send_input(Input::BrokerRestored).await
    }

    /// The broker link connected (`true`), or lost its connection or could
    /// not connect (`false`): `/metrics` shows it (`live_broker_connected`,
    /// `live_broker_disconnects_total`).
    pub async fn backplane_connection(&self, connected: bool) -> Result<(), ServerError> {
        self.send_input(Input::BrokerConnection(connected)).await
    }

    /// Follows a shared store's change feed
    /// ([`crate::AnyStore::watch_changes`]): each scope another node commits
    /// to is reloaded, then poked to this node's subscribers. Runs on a
    /// thread of its own until the feed or the server ends.
    pub fn follow_changes(&self, changes: std::sync::mpsc::Receiver<Option<String>>) {
        let inbox = self.inbox.clone();
        let spawned = std::thread::Builder::new()
            .name("store-changes".into())
            .spawn(move || {
                while let Ok(scope) = changes.recv() {
                    if inbox.send_blocking(Input::StoreNotice(scope)).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot follow the store's changes");
        }
    }

    /// Publishes `data` (one JSON value) on `topic` to every subscriber, any
    /// topic including `sync:` ones, and through the broker backplane (if
    /// any) to the other nodes' subscribers, `sync:` topics excepted. Returns
    /// how many local sessions it was queued for.
    pub async fn publish(&self, topic: &str, data: impl Into<Bytes>) -> Result<usize, ServerError> {
        let (topic, data) = (topic.to_owned(), data.into());
        Ok(self
            .call(|reply| Call::Publish { topic, data, reply })
            .await??)
    }

    /// Sends `{"topic":topic,"data":data}` to one session. Returns whether it
    /// was queued (`false`: the session overflowed and was closed).
    pub async fn send(
        &self,
        to: SessionId,
        topic: &str,
        data: impl Into<Bytes>,
    ) -> Result<bool, ServerError> {
        let (topic, data) = (topic.to_owned(), data.into());
        Ok(self
            .call(|reply| Call::Send {
                to,
                topic,
                data,
                reply,
            })
            .await??)
    }

    /// Closes a session with `code` and `reason`.
    pub async fn close(&self, id: SessionId, code: u16, reason: &str) -> Result<(), ServerError> {
        let reason = reason.to_owned();
        Ok(self
            .call(|reply| Call::Close {
                id,
                code,
                reason,
                reply,
            })
            .await??)
    }

    /// Subscribes a session to `topic` (no authorization: the server is
    /// trusted). Returns whether it was new.
    pub async fn subscribe(&self, id: SessionId, topic: &str) -> Result<bool, ServerError> {
        let topic = topic.to_owned();
        Ok(self
            .call(|reply| Call::Subscribe { id, topic, reply })
            .await??)
    }

    /// Unsubscribes a session from `topic`. Returns whether it was subscribed.
    pub async fn unsubscribe(&self, id: SessionId, topic: &str) -> Result<bool, ServerError> {
        let topic = topic.to_owned();
        Ok(self
            .call(|reply| Call::Unsubscribe { id, topic, reply })
            .await??)
    }

    /// How many sessions are open.
    pub async fn session_count(&self) -> Result<usize, ServerError> {
        self.call(|reply| Call::SessionCount { reply }).await
    }

    /// Trims `scope`'s sync log: changes with cursor `< before` are dropped; a
    /// pull from `c` then works iff `c >= before - 1`. Resolves once durable.
    pub async fn trim(&self, scope: &str, before: u64) -> Result<(), ServerError> {
        let scope = scope.to_owned();
        self.call(|reply| Call::Trim {
            scope,
            before,
            reply,
        })
        .await?
    }

    /// The hub's and the sync engine's counters.
    pub async fn metrics(&self) -> Result<MetricsSnapshot, ServerError> {
        self.call(|reply| Call::Metrics { reply }).await
    }

    /// Graceful shutdown: closes every session with 1001, persists and answers
    /// every push already accepted, then stops the server. Resolves when done.
    pub async fn shutdown(&self) {
        let _ = self.ask(|done| Input::Shutdown { done }).await;
    }

    /// Runs a parsed, authorized sync request; resolves to its response (for a
    /// push, once durable).
    pub async fn sync(&self, request: SyncRequest) -> Result<sync_core::Response, ServerError> {
        self.ask(|reply| Input::Sync { request, reply }).await
    }

    // ---- transport inputs, used by the connection loop and HTTP routes ----

    pub(crate) async fn http_sync(
        &self,
        user: U,
        parts: &http::request::Parts,
        path: &str,
        body: SyncBody,
    ) -> Result<sync_core::Response, ServerError> {
        self.ask(|reply| {
            Input::HttpSync(Box::new(HttpSyncInput {
                user,
                method: parts.method.clone(),
                path: path.to_owned(),
                query: parts.uri.query().unwrap_or("").to_owned(),
                body,
                reply,
            }))
        })
        .await
    }

    pub(crate) async fn open(
        &self,
        user: U,
        conn: Conn,
        local: bool,
    ) -> Result<SessionId, ServerError> {
        self.ask(|reply| Input::Open {
            user,
            conn,
            local,
            reply,
        })
        .await
    }

    /// A frame read from a session's socket. Handed over without waiting
    /// when the inbox has room; only a full inbox keeps a (boxed) send
    /// pending, so the reader's future stays small for every connection.
    pub(crate) fn frame(
        &self,
        id: SessionId,
        frame: Frame,
    ) -> impl std::future::Future<Output = Result<(), ServerError>> + Send + '_ {
        let pending = match self.inbox.try_send(Input::Frame { id, frame }) {
            Ok(()) => Ok(None),
            Err(async_channel::TrySendError::Full(input)) => {
                Ok(Some(Box::pin(self.inbox.send(input))))
            }
            Err(async_channel::TrySendError::Closed(_)) => Err(()),
        };
        async move {
            match pending {
                Ok(None) => Ok(()),
                Ok(Some(send)) => send.await.map_err(|_| ServerError::Stopped),
                Err(()) => Err(ServerError::Stopped),
            }
        }
    }

    pub(crate) fn flushed(&self, id: SessionId, messages: usize, bytes: usize) {
        if self.flushes.post(id, messages, bytes) {
            // Full: the driver is busy and reads the board on its next turn.
            let _ = self.inbox.try_send(Input::Flushes);
        }
    }

    pub(crate) async fn transport_closed(&self, id: SessionId) {
        let _ = self.send_input(Input::TransportClosed { id }).await;
    }

    pub(crate) async fn peer_fault(&self, id: SessionId, fault: PeerFault) {
        let _ = self.send_input(Input::PeerFault { id, fault }).await;
    }
}
