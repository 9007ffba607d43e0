//! The task that drives a [`sync_core::Replica`]: it feeds the replica what
//! the live connection hears (connects, disconnects, `_sync` replies, pokes)
//! and what HTTP answers, sends the requests the replica asks for (as `_sync`
//! frames or HTTP `POST`s), and sleeps until the replica's next
//! `poll_timeout`. It makes no timing or retry decision of its own.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::Value;
use sync_core::handler::{WS_TOPIC, encode_ws_request};
use sync_core::{App, ClientRequest, PokeData, Replica, ReplicaEvent, RequestId};
use tokio::sync::{Notify, broadcast, mpsc, watch};

use super::tap::{self, TapEvent};
use super::{HttpTransport, LiveClient};

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

/// The driver's clock: the client's ([`crate::runtime::now`]).
pub(crate) fn now() -> Instant {
    crate::runtime::now().into_std()
}

impl<A: App> Shared<A> {
    pub(crate) fn replica(&self) -> MutexGuard<'_, Replica<A>> {
        // The replica does not panic (that would be a bug in the core); if it
        // ever did, going on with its state beats failing every later call.
        self.replica.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drains the replica: requests to send, events published, status
    /// updated. Returns the requests and the next wake-up.
    fn pump(&self, now: Instant) -> (Vec<ClientRequest>, Option<Instant>) {
        let mut r = self.replica();
        let mut requests = Vec::new();
        while let Some(req) = r.poll_request(now) {
            requests.push(req);
        }
        self.publish(&mut r);
        let deadline = r.poll_timeout().map(|(t, _)| t);
        (requests, deadline)
    }

    /// The `_sync` frame carrying `req`, tagged with this tap's id.
    fn frame(&self, req: &ClientRequest) -> String {
        let rid = tap::rid(self.tap, req.id.0);
        encode_ws_request(&rid, req.operation(), &req.body_json())
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

    fn handle(&self, now: Instant, event: TapEvent, over_http: bool) {
        let mut r = self.replica();
        match event {
            TapEvent::Connected => {
                r.handle_connected(now);
                drop(r);
                self.status.send_modify(|s| s.connected = true);
            }
            TapEvent::Disconnected => {
                // Over HTTP the request in flight does not depend on the live
                // connection: let it finish (or time out) on its own.
                if !over_http {
                    r.handle_disconnected(now);
                }
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

/// How the replica's requests travel.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum SyncTransport {
    /// `_sync` messages on the live connection (the default): one socket for
    /// requests, replies and pokes.
    #[default]
    WebSocket,
    /// HTTP `POST`s to `/_sync/push|pull|snapshot`; pokes still come over
    /// the live connection. For servers without the WebSocket operations.
    Http(HttpTransport),
}

type Answer = (RequestId, Result<(u16, bytes::Bytes), String>);

/// Runs until the live client is gone or the handle is dropped (which
/// aborts this task).
pub(crate) async fn drive<A>(
    shared: Arc<Shared<A>>,
    live: LiveClient,
    transport: SyncTransport,
    mut taps: mpsc::UnboundedReceiver<TapEvent>,
) where
    A: App + Send + 'static,
    A::State: Send,
{
    let over_http = matches!(transport, SyncTransport::Http(_));
    if over_http {
        // HTTP needs no live connection to be answered.
        shared.replica().handle_connected(now());
    }
    let timeout = shared.replica().config().request_timeout;
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<Answer>();
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let (requests, deadline) = shared.pump(now());
        for req in requests {
            match &transport {
                SyncTransport::WebSocket => {
                    if live.frame_unchecked(shared.frame(&req)).await.is_err() {
                        return;
                    }
                }
                SyncTransport::Http(http) => {
                    let http = http.clone();
                    let tx = answers_tx.clone();
                    in_flight.spawn(async move {
                        let answer = http.send(&req, timeout).await;
                        let _ = tx.send((req.id, answer));
                    });
                }
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
                Some(ev) => shared.handle(now(), ev, over_http),
                None => return,
            },
            Some((id, answer)) = answers.recv() => {
                let mut r = shared.replica();
                match answer {
                    Ok((status, body)) => r.handle_response(now(), id, status, &body),
                    Err(e) => {
                        tracing::debug!(error = %e, "sync http request failed");
                        r.handle_request_failed(now(), id);
                    }
                }
            }
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = shared.wake.notified() => {}
            _ = sleep => shared.replica().handle_timeout(now()),
        }
    }
}
