//! [`ServerHandle`]: how application code and the transport loops talk to the
//! hub actor. Every call is a message into the actor's inbox.

use std::time::Instant;

use bytes::Bytes;
use live_core::{Frame, Hub, HubError, SessionId};
use sync_core::{EngineError, SyncRequest};

use crate::actor::{Conn, Input};
use crate::metrics::MetricsSnapshot;
use crate::outbox::{FlushBoard, post_flush};

/// Why a call through a [`ServerHandle`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The hub refused the command (unknown session, bad topic, invalid JSON).
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The sync engine refused the command (for example a trim past the head).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed to persist the batch carrying the command.
    #[error("store failed: {0}")]
    Store(String),
    /// The server has stopped.
    #[error("server stopped")]
    Stopped,
}

/// A cheap, cloneable handle on a running server: server-side publish, send,
/// close, subscribe, trim, metrics and shutdown.
pub struct ServerHandle<U> {
    pub(crate) inbox: async_channel::Sender<Input<U>>,
    pub(crate) flushes: FlushBoard,
}

impl<U> Clone for ServerHandle<U> {
    fn clone(&self) -> Self {
        Self {
            inbox: self.inbox.clone(),
            flushes: self.flushes.clone(),
        }
    }
}

impl<U> std::fmt::Debug for ServerHandle<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

type HubCall<U> = Box<dyn FnOnce(Instant, &mut Hub<U>) + Send>;

impl<U: Send + 'static> ServerHandle<U> {
    /// Runs `f` on the hub inside the actor and returns its result.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(Instant, &mut Hub<U>) -> T + Send + 'static,
    ) -> Result<T, ServerError> {
        let (tx, rx) = async_channel::bounded(1);
        let call: HubCall<U> = Box::new(move |now, hub| {
            let _ = tx.try_send(f(now, hub));
        });
        self.send_input(Input::Hub(call)).await?;
        rx.recv().await.map_err(|_| ServerError::Stopped)
    }

    /// Attaches a broker link: from now on the server sends it what the
    /// backplane needs (batched topic interest, local clients' publishes) on
    /// the returned receiver; the link delivers other nodes' publishes with
    /// [`ServerHandle::deliver_remote`]. The hub must have been configured
    /// with `backplane_events` (the `--broker` flag does it).
    pub async fn attach_backplane(
        &self,
    ) -> Result<async_channel::Receiver<crate::backplane::BackplaneCommand>, ServerError> {
        let (commands, receiver) = async_channel::bounded(64 * 1024);
        self.send_input(Input::AttachBackplane { commands }).await?;
        Ok(receiver)
    }

    /// Delivers a publish from another node to this node's subscribers of
    /// `topic` (and to no broker).
    pub async fn deliver_remote(&self, topic: String, data: Bytes) -> Result<(), ServerError> {
        self.send_input(Input::Remote { topic, data }).await
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
                    if inbox.send_blocking(Input::Refresh { scope }).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot follow the store's changes");
        }
    }

    pub(crate) async fn send_input(&self, input: Input<U>) -> Result<(), ServerError> {
        self.inbox
            .send(input)
            .await
            .map_err(|_| ServerError::Stopped)
    }

    /// Publishes `data` (one JSON value) on `topic` to every subscriber, any
    /// topic including `sync:` ones, and through the broker backplane (if
    /// any) to the other nodes' subscribers, `sync:` topics excepted. Returns
    /// how many local sessions it was queued for.
    pub async fn publish(&self, topic: &str, data: impl Into<Bytes>) -> Result<usize, ServerError> {
        let (tx, rx) = async_channel::bounded(1);
        self.send_input(Input::Publish {
            topic: topic.to_owned(),
            data: data.into(),
            reply: tx,
        })
        .await?;
        Ok(rx.recv().await.map_err(|_| ServerError::Stopped)??)
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
            .call(move |_, hub| hub.send(to, &topic, &data))
            .await??)
    }

    /// Closes a session with `code` and `reason`.
    pub async fn close(&self, id: SessionId, code: u16, reason: &str) -> Result<(), ServerError> {
        let reason = reason.to_owned();
        Ok(self
            .call(move |_, hub| hub.close(id, code, &reason))
            .await??)
    }

    /// Subscribes a session to `topic` (no authorization: the server is
    /// trusted). Returns whether it was new.
    pub async fn subscribe(&self, id: SessionId, topic: &str) -> Result<bool, ServerError> {
        let topic = topic.to_owned();
        Ok(self.call(move |_, hub| hub.subscribe(id, &topic)).await??)
    }

    /// Unsubscribes a session from `topic`. Returns whether it was subscribed.
    pub async fn unsubscribe(&self, id: SessionId, topic: &str) -> Result<bool, ServerError> {
        let topic = topic.to_owned();
        Ok(self
            .call(move |_, hub| hub.unsubscribe(id, &topic))
            .await??)
    }

    /// How many sessions are open.
    pub async fn session_count(&self) -> Result<usize, ServerError> {
        self.call(|_, hub| hub.sessions().count()).await
    }

    /// Trims `scope`'s sync log: changes with cursor `< before` are dropped; a
    /// pull from `c` then works iff `c >= before - 1`. Resolves once durable.
    pub async fn trim(&self, scope: &str, before: u64) -> Result<(), ServerError> {
        let (tx, rx) = async_channel::bounded(1);
        self.send_input(Input::Trim {
            scope: scope.to_owned(),
            before,
            reply: tx,
        })
        .await?;
        rx.recv().await.map_err(|_| ServerError::Stopped)?
    }

    /// The hub's and the sync engine's counters.
    pub async fn metrics(&self) -> Result<MetricsSnapshot, ServerError> {
        let (tx, rx) = async_channel::bounded(1);
        self.send_input(Input::Metrics { reply: tx }).await?;
        rx.recv().await.map_err(|_| ServerError::Stopped)
    }

    /// Graceful shutdown: closes every session with 1001, persists and answers
    /// every push already accepted, then stops the actor. Resolves when done.
    pub async fn shutdown(&self) {
        let (tx, rx) = async_channel::bounded(1);
        if self.send_input(Input::Shutdown { done: tx }).await.is_ok() {
            let _ = rx.recv().await;
        }
    }

    /// Runs a parsed, authorized sync request; resolves to its response (for a
    /// push, once durable).
    pub async fn sync(&self, request: SyncRequest) -> Result<sync_core::Response, ServerError> {
        let (tx, rx) = async_channel::bounded(1);
        self.send_input(Input::Sync { request, reply: tx }).await?;
        rx.recv().await.map_err(|_| ServerError::Stopped)
    }

    // ---- transport inputs, used by the connection loop ----

    pub(crate) async fn open(&self, user: U, conn: Conn) -> Result<SessionId, ServerError> {
        let (tx, rx) = async_channel::bounded(1);
        self.send_input(Input::Open {
            user,
            conn,
            reply: tx,
        })
        .await?;
        rx.recv().await.map_err(|_| ServerError::Stopped)
    }

    pub(crate) async fn frame(&self, id: SessionId, frame: Frame) -> Result<(), ServerError> {
        self.send_input(Input::Frame { id, frame }).await
    }

    pub(crate) fn flushed(&self, id: SessionId, messages: usize, bytes: usize) {
        post_flush(&self.flushes, id, messages, bytes);
    }

    pub(crate) async fn transport_closed(&self, id: SessionId) {
        let _ = self.send_input(Input::TransportClosed { id }).await;
    }

    pub(crate) async fn peer_fault(&self, id: SessionId, code: u16, reason: &'static str) {
        let _ = self.send_input(Input::PeerFault { id, code, reason }).await;
    }
}
