//! [`LiveClient`]: the cloneable handle of one reconnecting live connection,
//! and [`LiveEvents`], the stream of what it receives.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::Stream;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::backoff::Backoff;
use super::connection::{Command, Connection};
use super::subscriptions::Subscriptions;
use super::tap::{Tap, TapEvent};
use super::{ClientError, ConnectionState, LiveEvent, LiveOptions, Position, wire};

/// A live connection that reconnects by itself.
///
/// Call order: [`LiveClient::connect`] spawns the connection task and returns
/// at once (the first attempt runs in the background, like every later one);
/// read the returned [`LiveEvents`] concurrently with everything else (an
/// unread event stream eventually stops the client reading its socket);
/// [`subscribe`](LiveClient::subscribe) / [`unsubscribe`](LiveClient::unsubscribe)
/// whenever (the set is kept across reconnects and replayed on each new
/// connection before [`LiveEvent::Connected`] is reported);
/// [`publish`](LiveClient::publish) / [`send`](LiveClient::send) while
/// connected; [`close`](LiveClient::close) at the end (dropping every handle
/// closes too).
///
/// Clones share the connection. Calls wait only when the command queue
/// ([`LiveOptions::command_buffer`]) is full.
#[derive(Debug, Clone)]
pub struct LiveClient {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<ConnectionState>,
    next_tap: Arc<AtomicU64>,
}

impl LiveClient {
    /// Starts a client for `url` (`ws://host[:port]/path[?query]`). Fails only
    /// on a bad URL; an unreachable server is reported as events and retried.
    /// Works within any executor (tokio, smol) or none: outside tokio, the
    /// socket work runs on the client's own IO thread (see `runtime.rs`).
    pub fn connect(
        url: &str,
        options: LiveOptions,
    ) -> Result<(LiveClient, LiveEvents), ClientError> {
        let uri: http::Uri = url.parse().map_err(|_| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason: "not a URI",
        })?;
        match uri.scheme_str() {
            Some("ws") => {}
            Some("wss") => {
                return Err(ClientError::InvalidUrl {
                    url: url.to_owned(),
                    reason: "wss:// needs TLS, which this client is built without",
                });
            }
            _ => {
                return Err(ClientError::InvalidUrl {
                    url: url.to_owned(),
                    reason: "the scheme must be ws",
                });
            }
        }
        if uri.host().is_none() {
            return Err(ClientError::InvalidUrl {
                url: url.to_owned(),
                reason: "no host",
            });
        }
        let runtime = super::runtime::io_handle()?;
        let (commands_tx, commands) = mpsc::channel(options.command_buffer.max(1));
        let (events_tx, events) = mpsc::channel(options.event_buffer.max(1));
        let (state_tx, state) = watch::channel(ConnectionState::Connecting);
        let subscriptions = Subscriptions::new(options.resume);
        let connection = Connection {
            uri,
            backoff: Backoff::new(&options.reconnect),
            options,
            commands,
            events: events_tx,
            state: state_tx,
            subscriptions,
            taps: Default::default(),
            closers: Vec::new(),
            token: None,
            refresh_now: false,
        };
        runtime.spawn(connection.run());
        let client = LiveClient {
            commands: commands_tx,
            state,
            next_tap: Arc::new(AtomicU64::new(1)),
        };
        Ok((client, LiveEvents { rx: events }))
    }

    // ---- getters ----

    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// Waits until connected (subscriptions sent). Errors once closed.
    pub async fn wait_connected(&self) -> Result<(), ClientError> {
        let mut state = self.state.clone();
        let s = state
            .wait_for(|s| matches!(s, ConnectionState::Connected | ConnectionState::Closed))
            .await
            .map_err(|_| ClientError::Closed)?;
        match *s {
            ConnectionState::Connected => Ok(()),
            _ => Err(ClientError::Closed),
        }
    }

    // ---- commands ----

    /// Adds `topic` to the subscription set (sent now if connected, and again
    /// on every reconnect). A refusal arrives as [`LiveEvent::ServerError`].
    ///
    /// With [`LiveOptions::resume`] on (the default), the subscribe asks for
    /// the topic's position (answered as [`LiveEvent::Subscribed`]) and every
    /// later one, after a reconnect too, resumes from the last position
    /// read: on a topic with history, what was published meanwhile arrives
    /// once and in order, or [`LiveEvent::RecoveryFailed`] says it is gone.
    pub async fn subscribe(&self, topic: impl Into<String>) -> Result<(), ClientError> {
        self.command(Command::Subscribe(topic.into(), None)).await
    }

    /// Like [`LiveClient::subscribe`], starting from `position` (saved from
    /// [`LiveClient::position`] or a [`Message`](crate::Message)'s offset),
    /// so the publications after it arrive first. Ignored for a topic
    /// already subscribed, or with [`LiveOptions::resume`] off.
    pub async fn subscribe_from(
        &self,
        topic: impl Into<String>,
        position: Position,
    ) -> Result<(), ClientError> {
        self.command(Command::Subscribe(topic.into(), Some(position)))
            .await
    }

    /// The last position read on `topic`: `None` when it is not subscribed,
    /// has no history, or the server has not answered yet (or resume is off).
    pub async fn position(&self, topic: &str) -> Result<Option<Position>, ClientError> {
        let (answer, wait) = oneshot::channel();
        self.command(Command::Position(topic.to_owned(), answer))
            .await?;
        wait.await.map_err(|_| ClientError::Closed)
    }

    /// Removes `topic` from the subscription set.
    pub async fn unsubscribe(&self, topic: impl Into<String>) -> Result<(), ClientError> {
        self.command(Command::Unsubscribe(topic.into())).await
    }

    /// Publishes `data` to every subscriber of `topic` (the built-in
    /// `publish` command). At most once: [`ClientError::NotConnected`] when
    /// offline, and a message racing a disconnect may be lost.
    pub async fn publish(&self, topic: &str, data: Value) -> Result<(), ClientError> {
        self.frame(wire::publish(topic, &data)).await
    }

    /// Sends the application message `{"topic": topic, "data": data}` to the
    /// server (its on-message handler), with the same delivery as
    /// [`LiveClient::publish`].
    pub async fn send(&self, topic: &str, data: Value) -> Result<(), ClientError> {
        self.frame(wire::envelope(topic, &data)).await
    }

    /// Closes the connection with code 1000 and ends the connection task (for
    /// every clone); returns when the close handshake is done or has timed out.
    pub async fn close(&self) -> Result<(), ClientError> {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Close(done)).await.is_err() {
            return Ok(());
        }
        let _ = wait.await;
        Ok(())
    }

    // ---- for the sync client ----

    /// Sends an encoded frame if connected.
    pub(crate) async fn frame(&self, frame: String) -> Result<(), ClientError> {
        match self.state() {
            ConnectionState::Connected => self.command(Command::Frame(frame)).await,
            ConnectionState::Closed => Err(ClientError::Closed),
            _ => Err(ClientError::NotConnected),
        }
    }

    /// Sends an encoded frame if the connection is up when the task gets it;
    /// dropped otherwise (the sync driver hears about the disconnect anyway).
    pub(crate) async fn frame_unchecked(&self, frame: String) -> Result<(), ClientError> {
        self.command(Command::Frame(frame)).await
    }

    /// Attaches a tap claiming `topics`; returns its id and its events.
    pub(crate) async fn attach(
        &self,
        topics: impl IntoIterator<Item = String>,
    ) -> Result<(u64, mpsc::UnboundedReceiver<TapEvent>), ClientError> {
        let id = self.next_tap.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let tap = Tap {
            id,
            topics: topics.into_iter().collect(),
            tx,
        };
        self.command(Command::Attach(tap)).await?;
        Ok((id, rx))
    }

    /// Detaches a tap.
    pub(crate) async fn detach(&self, id: u64) -> Result<(), ClientError> {
        self.command(Command::Detach(id)).await
    }

    /// Best effort, for `Drop`: detach a tap and drop its topic.
    pub(crate) fn try_detach(&self, id: u64, topic: String) {
        let _ = self.commands.try_send(Command::Detach(id));
        let _ = self.commands.try_send(Command::Unsubscribe(topic));
    }

    async fn command(&self, cmd: Command) -> Result<(), ClientError> {
        self.commands
            .send(cmd)
            .await
            .map_err(|_| ClientError::Closed)
    }
}

/// The events of one [`LiveClient`], in arrival order; ends after
/// [`LiveEvent::Closed`]. Also a [`Stream`].
#[derive(Debug)]
pub struct LiveEvents {
    rx: mpsc::Receiver<LiveEvent>,
}

impl LiveEvents {
    /// The next event; `None` once the client is gone.
    pub async fn recv(&mut self) -> Option<LiveEvent> {
        self.rx.recv().await
    }
}

impl Stream for LiveEvents {
    type Item = LiveEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LiveEvent>> {
        self.rx.poll_recv(cx)
    }
}
