//! [`SyncClient`]: an offline-first replica of one scope, kept in step with
//! the server over a [`LiveClient`]'s connection.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use sync_core::{App, Replica, ReplicaConfig, ReplicaEvent};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use super::sync_driver::{Shared, SyncStatus, SyncTransport, drive, now};
use super::{ClientError, LiveClient};

/// How many replica events a slow reader of [`SyncClient::events`] may fall
/// behind before it misses some (it then sees `Lagged`).
const EVENT_BUFFER: usize = 256;

/// An offline-first replica of one scope.
///
/// Transport: by default the sync operations travel as `_sync` messages on
/// the live connection, so one socket carries requests, their replies and
/// the `sync:<scope>` pokes; "connected" means exactly "the requests can be
/// answered", and a reconnect of the live client is a reconnect of sync.
/// [`SyncTransport::Http`] sends them as HTTP `POST`s instead (for servers
/// without the WebSocket operations); pokes still come over `live`. The
/// replica (sans-IO, in `sync-core`) makes every decision: what to send,
/// when to retry, when to poll. This client only carries its requests and
/// sleeps until its `poll_timeout`.
///
/// Call order: [`SyncClient::start`] on a [`LiveClient`] (it subscribes to
/// `sync:<scope>` on that connection: leave that topic to it); then
/// [`SyncClient::mutate`] at any time, online or not (the mutation shows in
/// [`SyncClient::state`] at once and is pushed when possible, in `seq` order,
/// exactly once); watch progress with [`SyncClient::watch`] or the
/// [`SyncEvents`]. Dropping the handle stops the replica (pending mutations
/// not yet pushed are lost unless the application saved them).
pub struct SyncClient<A: App> {
    shared: Arc<Shared<A>>,
    live: LiveClient,
    task: JoinHandle<()>,
}

impl<A> SyncClient<A>
where
    A: App + Send + 'static,
    A::State: Send,
{
    /// Starts replicating `config.scope` over `live`, requests as `_sync`
    /// messages on it.
    pub async fn start(
        live: &LiveClient,
        app: A,
        config: ReplicaConfig,
    ) -> Result<(SyncClient<A>, SyncEvents), ClientError> {
        Self::start_with(live, app, config, SyncTransport::WebSocket).await
    }

    /// Starts replicating `config.scope`, requests over `transport`, pokes
    /// over `live`.
    pub async fn start_with(
        live: &LiveClient,
        app: A,
        config: ReplicaConfig,
        transport: SyncTransport,
    ) -> Result<(SyncClient<A>, SyncEvents), ClientError> {
        let topic = format!("sync:{}", config.scope);
        // Subscribe first: a new connection replays subscriptions before the
        // tap hears "connected", so no poke can fall between pull and subscribe.
        live.subscribe(topic.clone()).await?;
        let (tap, taps) = live.attach([topic.clone()]).await?;
        let (events_tx, events) = broadcast::channel(EVENT_BUFFER);
        let (status, _) = watch::channel(SyncStatus::default());
        let shared = Arc::new(Shared {
            replica: Mutex::new(Replica::new(app, config, now())),
            wake: Notify::new(),
            status,
            events: events_tx,
            tap,
            topic,
        });
        let task = super::runtime::io_handle()?.spawn(drive(
            shared.clone(),
            live.clone(),
            transport,
            taps,
        ));
        let client = SyncClient {
            shared,
            live: live.clone(),
            task,
        };
        Ok((client, SyncEvents { rx: events }))
    }

    // ---- getters ----

    /// A copy of the visible state: the server's state with the pending
    /// mutations applied on top.
    pub fn state(&self) -> A::State {
        self.shared.replica().state().clone()
    }

    /// Reads the visible state without copying it.
    pub fn with_state<R>(&self, f: impl FnOnce(&A::State) -> R) -> R {
        f(self.shared.replica().state())
    }

    /// Progress counters as of the driver's last step.
    pub fn status(&self) -> SyncStatus {
        *self.shared.status.borrow()
    }

    /// A receiver that wakes on every status change (new revision, cursor,
    /// pending count, connection).
    pub fn watch(&self) -> watch::Receiver<SyncStatus> {
        self.shared.status.subscribe()
    }

    /// Another receiver of replica events (from now on).
    pub fn events(&self) -> SyncEvents {
        SyncEvents {
            rx: self.shared.events.subscribe(),
        }
    }

    /// Waits until `done` holds for the visible state, checking after every
    /// status change.
    pub async fn wait_until(
        &self,
        mut done: impl FnMut(&A::State) -> bool,
    ) -> Result<(), ClientError> {
        let mut watch = self.watch();
        loop {
            if self.with_state(&mut done) {
                return Ok(());
            }
            watch.changed().await.map_err(|_| ClientError::Closed)?;
        }
    }

    /// Waits until nothing is pending, in flight or wanted from the server.
    pub async fn wait_settled(&self) -> Result<SyncStatus, ClientError> {
        let mut watch = self.watch();
        let s = watch
            .wait_for(|s| s.settled)
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(*s)
    }

    // ---- commands ----

    /// Applies mutation `name(args)` locally and queues it for the server with
    /// this client's id and the next sequence number, which it returns.
    pub fn mutate(&self, name: &str, args: Value) -> Result<u64, ClientError> {
        let seq = {
            let mut r = self.shared.replica();
            let seq = r.mutate(now(), name, args)?;
            self.shared.publish(&mut r);
            seq
        };
        self.shared.wake.notify_one();
        Ok(seq)
    }
}

impl<A: App> SyncClient<A> {
    /// Stops the replica and gives its `sync:<scope>` subscription back,
    /// waiting for the connection task to take both commands (dropping the
    /// handle does the same on a best-effort basis).
    pub async fn close(self) {
        self.task.abort();
        let _ = self.live.detach(self.shared.tap).await;
        let _ = self.live.unsubscribe(self.shared.topic.clone()).await;
    }
}

impl<A: App> Drop for SyncClient<A> {
    fn drop(&mut self) {
        self.task.abort();
        self.live
            .try_detach(self.shared.tap, self.shared.topic.clone());
    }
}

/// Replica events: rejections, snapshot resets, failed requests, changes.
#[derive(Debug)]
pub struct SyncEvents {
    rx: broadcast::Receiver<ReplicaEvent>,
}

impl SyncEvents {
    /// The next event; `None` once the client is gone. Events a slow reader
    /// missed are skipped.
    pub async fn recv(&mut self) -> Option<ReplicaEvent> {
        loop {
            match self.rx.recv().await {
                Ok(ev) => return Some(ev),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
