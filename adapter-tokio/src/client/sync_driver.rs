//! The task that drives a [`sync_core::Replica`] over a live connection: it
//! feeds the replica what the connection hears (connects, disconnects, `_sync`
//! replies, pokes), sends the requests the replica asks for as `_sync`
//! frames, and sleeps until the replica's next `poll_timeout`. It makes no
//! timing or retry decision of its own.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::Value;
use sync_core::handler::{WS_TOPIC, encode_ws_request};
use sync_core::{App, PokeData, Replica, ReplicaEvent, RequestId};
use tokio::sync::{Notify, broadcast, mpsc, watch};

use super::LiveClient;
use super::tap::{self, TapEvent};

/// What a [`SyncClient`](super::SyncClient) shows about its progress;
/// published after every step of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncStatus {
    /// Bumped each time the visible state changes.
    pub revision: u64,
    /// The last server cursor applied.
    pub cursor: u64,
    /// Mutations not yet confirmed by a pull.
    pub pending: usize,
    /// The last sequence number used.
    pub last_seq: u64,
    /// Nothing pending, in flight or wanted from the server.
    pub settled: bool,
    /// The live connection is up.
    pub connected: bool,
    /// Snapshot resets so far (410 `cursor_too_old`).
    pub resets: u64,
    /// Mutations the server refused for good so far.
    pub rejected: u64,
}

/// State shared by the handle and the driver task.
pub(crate) struct Shared<A: App> {
    pub(crate) replica: Mutex<Replica<A>>,
    pub(crate) wake: Notify,
    pub(crate) status: watch::Sender<SyncStatus>,
    pub(crate) events: broadcast::Sender<ReplicaEvent>,
    pub(crate) tap: u64,
    pub(crate) topic: String,
}

/// The driver's clock: tokio's, so paused-time tests could drive it too.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl<A: App> Shared<A> {
    pub(crate) fn replica(&self) -> MutexGuard<'_, Replica<A>> {
        // A panic while holding the lock cannot leave the replica half-updated
        // in a way its own methods would not, so a poisoned lock is still usable.
        self.replica.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drains the replica: requests to send (encoded), events published,
    /// status updated. Returns the frames and the next wake-up.
    fn pump(&self, now: Instant) -> (Vec<String>, Option<Instant>) {
        let mut r = self.replica();
        let mut frames = Vec::new();
        while let Some(req) = r.poll_request(now) {
            let rid = tap::rid(self.tap, req.id.0);
            frames.push(encode_ws_request(&rid, req.operation(), &req.body_json()));
        }
        self.publish(&mut r);
        let deadline = r.poll_timeout().map(|(t, _)| t);
        (frames, deadline)
    }

    /// Hands the replica's events to the listeners and refreshes the status.
    /// Called with the lock held, so the status never lags the state.
    pub(crate) fn publish(&self, r: &mut Replica<A>) {
        let mut status = *self.status.borrow();
        while let Some(ev) = r.poll_event() {
            match &ev {
                ReplicaEvent::Changed => status.revision += 1,
                ReplicaEvent::Reset { .. } => status.resets += 1,
                ReplicaEvent::Rejected { .. } => status.rejected += 1,
                ReplicaEvent::RequestFailed { operation, status } => {
                    tracing::debug!(?operation, ?status, "sync request failed; retrying later");
                }
            }
            let _ = self.events.send(ev);
        }
        status.cursor = r.cursor();
        status.pending = r.pending().count();
        status.last_seq = r.last_seq();
        status.settled = r.is_settled();
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    fn handle(&self, now: Instant, event: TapEvent) {
        let mut r = self.replica();
        match event {
            TapEvent::Connected => {
                r.handle_connected(now);
                drop(r);
                self.status.send_modify(|s| s.connected = true);
            }
            TapEvent::Disconnected => {
                r.handle_disconnected(now);
                drop(r);
                self.status.send_modify(|s| s.connected = false);
            }
            TapEvent::Frame { topic, data } if topic == WS_TOPIC => {
                let Some((_, id)) = data.get("rid").and_then(tap::parse_rid) else {
                    return;
                };
                let status = data
                    .get("status")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(0);
                let body = data
                    .get("body")
                    .map(|b| serde_json::to_vec(b).unwrap_or_default())
                    .unwrap_or_default();
                r.handle_response(now, RequestId(id), status, &body);
            }
            TapEvent::Frame { topic, data } if topic == self.topic => {
                if let Ok(poke) = serde_json::from_value::<PokeData>(data) {
                    r.handle_poke(now, poke.cursor);
                }
            }
            TapEvent::Frame { .. } => {}
        }
    }
}

/// Runs until the live client is gone or the handle is dropped (which
/// aborts this task).
pub(crate) async fn drive<A>(
    shared: Arc<Shared<A>>,
    live: LiveClient,
    mut taps: mpsc::UnboundedReceiver<TapEvent>,
) where
    A: App + Send + 'static,
    A::State: Send,
{
    loop {
        let (frames, deadline) = shared.pump(now());
        for f in frames {
            if live.frame_unchecked(f).await.is_err() {
                return;
            }
        }
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = taps.recv() => match ev {
                Some(ev) => shared.handle(now(), ev),
                None => return,
            },
            _ = shared.wake.notified() => {}
            _ = sleep => shared.replica().handle_timeout(now()),
        }
    }
}
