//! The connection task: one per [`LiveClient`](super::LiveClient). It connects,
//! replays the subscriptions, pumps frames both ways, and on any loss waits a
//! jittered backoff and starts again, until the client is closed.
//!
//! Commands arrive over a bounded channel and are batched: everything queued
//! is fed to the socket, then flushed once. Commands that need no connection
//! (subscription changes, taps) are applied while offline too; frames to send
//! are dropped while offline (live is at-most-once).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::Request;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::backoff::Backoff;
use super::refresh;
use super::runtime;
use super::subscriptions::{Reply, Subscriptions};
use super::tap::{Tap, Taps};
use super::{ConnectionState, DisconnectReason, LiveEvent, LiveOptions, Message, Position, wire};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Most commands fed to the socket before one flush.
const BATCH: usize = 256;
/// How long a clean close waits for the server's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A request from a client handle to its connection task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Want a topic, from this position if given (and the topic is new).
    Subscribe(String, Option<Position>),
    Unsubscribe(String),
    /// Asks for a topic's position.
    Position(String, oneshot::Sender<Option<Position>>),
    /// An encoded frame: publish, application message, sync request.
    Frame(String),
    Attach(Tap),
    Detach(u64),
    /// Close the connection cleanly and end the task; answered when done.
    Close(oneshot::Sender<()>),
}

/// How a connected session ended.
enum SessionEnd {
    Lost(DisconnectReason),
    Closed,
}

/// Result of an offline command.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The task's state.
pub(crate) struct Connection {
    pub(crate) uri: http::Uri,
    pub(crate) options: LiveOptions,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<LiveEvent>,
    pub(crate) state: watch::Sender<ConnectionState>,
    pub(crate) subscriptions: Subscriptions,
    pub(crate) taps: Taps,
    pub(crate) backoff: Backoff,
    /// Who to answer once the close is done.
    pub(crate) closers: Vec<oneshot::Sender<()>>,
    /// The token of the current connection (or its latest refresh).
    pub(crate) token: Option<String>,
    /// The server said the token expired: refresh at once.
    pub(crate) refresh_now: bool,
}

impl Connection {
    /// Runs until the client is closed or every handle is dropped.
    pub(crate) async fn run(mut self) {
        loop {
            self.state.send_replace(ConnectionState::Connecting);
            let reason = match self.connect().await {
                Err(None) => break,
                Err(Some(reason)) => reason,
                Ok(ws) => {
                    let since = runtime::now();
                    let end = self.session(ws).await;
                    self.taps.broadcast(false);
                    match end {
                        SessionEnd::Closed => break,
                        SessionEnd::Lost(reason) => {
                            if runtime::now().saturating_duration_since(since)
                                >= self.options.reconnect.stable_after
                            {
                                self.backoff.reset();
                            }
                            reason
                        }
                    }
                }
            };
            tracing::debug!(?reason, "live client disconnected");
            self.notify(LiveEvent::Disconnected { reason });
            let delay = self.backoff.next_delay();
            let attempt = self.backoff.failures();
            self.state.send_replace(ConnectionState::Waiting);
            self.notify(LiveEvent::Reconnecting { attempt, delay });
            if self.wait(delay).await == Flow::Stop {
                break;
            }
        }
        // Refuse further commands before anyone hears about the close.
        self.commands.close();
        self.state.send_replace(ConnectionState::Closed);
        self.notify(LiveEvent::Closed);
        for c in self.closers.drain(..) {
            let _ = c.send(());
        }
    }

    /// Delivers a message or error frame, waiting for room: an application
    /// that stops reading stops this client reading its socket, and the
    /// server's slow-consumer policy takes over. A dropped receiver means
    /// the application ignores events: fine.
    async fn emit(&self, event: LiveEvent) {
        let _ = self.events.send(event).await;
    }

    /// Delivers a connection-state event without waiting: a sync-only
    /// application that never reads events must not stall after many
    /// reconnects. When the buffer is full the event is dropped; the current
    /// state is still readable from [`LiveClient::state`](super::LiveClient::state).
    fn notify(&self, event: LiveEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            tracing::debug!(?event, "live client event buffer full; state event dropped");
        }
    }

    /// One attempt, serving commands meanwhile. `Err(None)`: closed.
    async fn connect(&mut self) -> Result<Ws, Option<DisconnectReason>> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.options.max_message_size))
            .max_frame_size(Some(self.options.max_message_size));
        let uri = self.uri.clone();
        let headers = self.options.headers.clone();
        let token = self.options.token.clone();
        let provider = self.options.token_provider.clone();
        let attempt = tokio::time::timeout(self.options.connect_timeout, async move {
            let token = match provider {
                Some(p) => p.token().await,
                None => token,
            };
            let req = request(&uri, &headers, token.as_deref())?;
            tokio_tungstenite::connect_async_with_config(req, Some(config), true)
                .await
                .map(|(ws, _response)| (ws, token))
                .map_err(handshake_failure)
        });
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                result = &mut attempt => {
                    return match result {
                        Ok(Ok((ws, token))) => {
                            self.token = token;
                            Ok(ws)
                        }
                        Ok(Err(reason)) => Err(Some(reason)),
                        Err(_) => Err(Some(DisconnectReason::ConnectFailed(
                            "connect timed out".into(),
                        ))),
                    };
                }
                cmd = self.commands.recv() => {
                    if self.offline(cmd) == Flow::Stop {
                        return Err(None);
                    }
                }
            }
        }
    }

    /// Sleeps `delay`, serving commands meanwhile.
    async fn wait(&mut self, delay: Duration) -> Flow {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Flow::Continue,
                cmd = self.commands.recv() => {
                    if self.offline(cmd) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
            }
        }
    }

    /// Applies a command while there is no connection.
    fn offline(&mut self, cmd: Option<Command>) -> Flow {
        match cmd {
            None => return Flow::Stop,
            Some(Command::Subscribe(t, since)) => drop(self.subscriptions.add(t, since)),
            Some(Command::Unsubscribe(t)) => drop(self.subscriptions.remove(&t)),
            Some(Command::Position(t, answer)) => {
                let _ = answer.send(self.subscriptions.position(&t));
            }
            Some(Command::Frame(_)) => {}
            Some(Command::Attach(tap)) => self.taps.attach(tap),
            Some(Command::Detach(id)) => self.taps.detach(id),
            Some(Command::Close(done)) => {
                self.closers.push(done);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Serves one connection until it ends.
    async fn session(&mut self, ws: Ws) -> SessionEnd {
        let (mut sink, mut stream) = ws.split();
        for frame in self.subscriptions.replay() {
            if let Err(e) = sink.feed(WsMessage::text(frame)).await {
                return SessionEnd::Lost(lost(e));
            }
        }
        if let Err(e) = sink.flush().await {
            return SessionEnd::Lost(lost(e));
        }
        self.state.send_replace(ConnectionState::Connected);
        self.taps.broadcast(true);
        self.notify(LiveEvent::Connected);

        let period = self.options.ping_interval.filter(|p| !p.is_zero());
        let mut ping = period.map(|p| tokio::time::interval_at(runtime::now() + p, p));
        let mut heard = runtime::now();
        self.refresh_now = false;
        let mut refresh_at = self.next_refresh(Duration::ZERO);
        loop {
            if std::mem::take(&mut self.refresh_now) && self.options.token_provider.is_some() {
                refresh_at = Some(runtime::now());
            }
            tokio::select! {
                _ = sleep_until(refresh_at) => {
                    if let Some(provider) = self.options.token_provider.clone()
                        && let Some(token) = provider.token().await
                    {
                        if let Err(e) = sink.send(WsMessage::text(refresh::frame(&token))).await {
                            return SessionEnd::Lost(lost(e));
                        }
                        self.token = Some(token);
                    }
                    refresh_at = self.next_refresh(refresh::MIN_REFRESH_GAP);
                }
                msg = stream.next() => {
                    heard = runtime::now();
                    let text = match msg {
                        Some(Ok(WsMessage::Text(t))) => t.as_str().to_owned(),
                        Some(Ok(WsMessage::Binary(b))) => match String::from_utf8(b.to_vec()) {
                            Ok(t) => t,
                            Err(_) => continue,
                        },
                        Some(Ok(WsMessage::Close(frame))) => {
                            // tungstenite queued the close reply; keep reading so it
                            // is flushed and the server sees a clean close.
                            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                                while let Some(Ok(_)) = stream.next().await {}
                            })
                            .await;
                            let (code, reason) = frame.map_or((1005, String::new()), |f| {
                                (u16::from(f.code), f.reason.as_str().to_owned())
                            });
                            return SessionEnd::Lost(DisconnectReason::ClosedByServer { code, reason });
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return SessionEnd::Lost(lost(e)),
                        None => return SessionEnd::Lost(DisconnectReason::ConnectionLost(
                            "connection ended".into(),
                        )),
                    };
                    self.incoming(&text).await;
                }
                cmd = self.commands.recv() => {
                    let mut batch = Vec::with_capacity(1);
                    batch.extend(cmd);
                    while batch.len() < BATCH {
                        match self.commands.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    let stop = batch.is_empty();
                    for c in batch {
                        let frame = match c {
                            Command::Subscribe(t, since) => {
                                if self.subscriptions.add(t.clone(), since) {
                                    self.subscriptions.subscribe_frame(&t)
                                } else {
                                    None
                                }
                            }
                            Command::Unsubscribe(t) => self.subscriptions.remove(&t),
                            Command::Position(t, answer) => {
                                let _ = answer.send(self.subscriptions.position(&t));
                                None
                            }
                            Command::Frame(f) => Some(f),
                            Command::Attach(tap) => {
                                let _ = tap.tx.send(super::tap::TapEvent::Connected);
                                self.taps.attach(tap);
                                None
                            }
                            Command::Detach(id) => {
                                self.taps.detach(id);
                                None
                            }
                            Command::Close(done) => {
                                self.closers.push(done);
                                None
                            }
                        };
                        if let Some(frame) = frame
                            && let Err(e) = sink.feed(WsMessage::text(frame)).await
                        {
                            return SessionEnd::Lost(lost(e));
                        }
                    }
                    if let Err(e) = sink.flush().await {
                        return SessionEnd::Lost(lost(e));
                    }
                    if stop || !self.closers.is_empty() {
                        let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        let _ = sink.send(WsMessage::Close(Some(frame))).await;
                        let _ = tokio::time::timeout(CLOSE_WAIT, async {
                            while let Some(Ok(_)) = stream.next().await {}
                        })
                        .await;
                        return SessionEnd::Closed;
                    }
                }
                _ = tick(&mut ping) => {
                    let period = period.unwrap_or(Duration::MAX);
                    if runtime::now().saturating_duration_since(heard) >= period.saturating_mul(2) {
                        return SessionEnd::Lost(DisconnectReason::PingTimeout);
                    }
                    if let Err(e) = sink.send(WsMessage::Ping(Default::default())).await {
                        return SessionEnd::Lost(lost(e));
                    }
                }
            }
        }
    }

    /// When to refresh the current token in-band (with a token provider
    /// only), at least `gap` from now.
    fn next_refresh(&self, gap: Duration) -> Option<Instant> {
        self.options.token_provider.as_ref()?;
        let wait = refresh::refresh_in(self.token.as_deref()?, runtime::wall_clock())?;
        Some(runtime::now() + wait.max(gap))
    }

    /// Routes one received frame.
    async fn incoming(&mut self, text: &str) {
        let Some(frame) = wire::parse(text) else {
            tracing::debug!("live client ignored a frame that is not an envelope");
            return;
        };
        if frame.topic == wire::SUBSCRIBED && self.subscriptions.resume() {
            match self.subscriptions.on_subscribed(&frame.data) {
                Reply::Events(events) => {
                    for event in events {
                        match event {
                            // A sync client's poke topic: its driver pulls on
                            // every reconnect; the application never hears of it.
                            LiveEvent::Subscribed { ref topic, .. }
                            | LiveEvent::RecoveryFailed { ref topic, .. }
                                if self.taps.claims(topic) => {}
                            // Like connection states: never waited for, so an
                            // application that does not read events cannot stall.
                            LiveEvent::Subscribed { .. } => self.notify(event),
                            // Missed messages: waited for, as messages are.
                            _ => self.emit(event).await,
                        }
                    }
                    return;
                }
                Reply::Stale => return,
                Reply::NotOurs => {}
            }
        }
        let offset = frame.offset();
        if !self.subscriptions.on_delivery(&frame.topic, offset) {
            tracing::trace!(topic = %frame.topic, ?offset, "live client dropped a duplicate");
            return;
        }
        let Some((topic, data)) = self.taps.route(frame.topic, frame.data) else {
            return;
        };
        let event = if topic == wire::ERROR {
            let (code, message) = wire::error_fields(&data);
            self.refresh_now |= code == "token_expired";
            if let Some(topic) = wire::refused_subscribe(&code, &message) {
                self.subscriptions.on_refused(topic);
            }
            LiveEvent::ServerError { code, message }
        } else {
            LiveEvent::Message(Message {
                topic,
                data,
                offset,
            })
        };
        self.emit(event).await;
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next ping tick, or never when pings are off.
async fn tick(ping: &mut Option<tokio::time::Interval>) {
    match ping {
        Some(p) => {
            p.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The handshake request: the URL plus the configured headers and token.
fn request(
    uri: &http::Uri,
    headers: &http::HeaderMap,
    token: Option<&str>,
) -> Result<Request<()>, DisconnectReason> {
    let mut req = uri
        .into_client_request()
        .map_err(|e| DisconnectReason::ConnectFailed(e.to_string()))?;
    for (name, value) in headers {
        req.headers_mut().append(name, value.clone());
    }
    if let Some(token) = token {
        let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| DisconnectReason::ConnectFailed(e.to_string()))?;
        req.headers_mut().insert(http::header::AUTHORIZATION, value);
    }
    Ok(req)
}

fn lost(e: tungstenite::Error) -> DisconnectReason {
    DisconnectReason::ConnectionLost(e.to_string())
}

fn handshake_failure(e: tungstenite::Error) -> DisconnectReason {
    match e {
        tungstenite::Error::Http(response) => DisconnectReason::Rejected {
            status: response.status().as_u16(),
        },
        other => DisconnectReason::ConnectFailed(other.to_string()),
    }
}
