//! The WebSocket connection loop, generic over any `Stream + Sink` of
//! tungstenite messages (async-tungstenite's `WebSocketStream<S>` for any
//! futures-io socket), so both adapters run this one copy.
//!
//! One task per connection runs two halves side by side:
//! - the reader turns every frame into a hub input, in order;
//! - the writer waits for the first queued item, then drains everything else
//!   already queued with `feed` (no flush per frame), flushes once, and
//!   reports the flushed messages and bytes to the hub, which is how the hub
//!   knows each session's true queue depth. No timer sits in the write path:
//!   a frame is written as soon as the writer is free.
//!
//! When the hub closes the session, the writer writes the close frame and
//! stops; the connection then has [`crate::ServerConfig::close_grace`] to
//! finish the close handshake (or, for a slow consumer whose socket does not
//! drain, to take its last frames) before the socket is dropped.

use std::time::Duration;

use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::future::{join, select};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use live_core::{Frame, OutFrame, SessionId, codes};

use crate::actor::{Conn, Outbound};
use crate::handle::ServerHandle;
use crate::runtime::Runtime;

/// Most frames fed before one flush; bounds the time between flush reports
/// when a session's queue never runs dry.
const MAX_FRAMES_PER_FLUSH: usize = 256;

/// Serves one upgraded WebSocket for a session authenticated as `user`, until
/// it ends.
pub async fn run<R, U, W>(rt: R, server: ServerHandle<U>, ws: W, user: U, close_grace: Duration)
where
    R: Runtime,
    U: Send + 'static,
    W: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin,
{
    let (out, out_rx) = async_channel::unbounded();
    let (kill, kill_rx) = async_channel::bounded(1);
    let mut ws = ws;
    let Ok(id) = server.open(user, Conn { out, kill }).await else {
        let close = CloseFrame {
            code: CloseCode::Away,
            reason: "server stopped".into(),
        };
        let _ = ws.send(Message::Close(Some(close))).await;
        return;
    };
    let (sink, stream) = ws.split();
    let work = join(
        write_loop(sink, out_rx, &server, id),
        read_loop(stream, &server, id),
    );
    let deadline = async {
        // Ends at once when the hub forgot the session without closing it
        // (transport gone), else when it closed it; then the grace period.
        let _ = kill_rx.recv().await;
        rt.sleep_until(rt.now() + close_grace).await;
    };
    select(std::pin::pin!(work), std::pin::pin!(deadline)).await;
}

async fn read_loop<U, T>(mut stream: T, server: &ServerHandle<U>, id: SessionId)
where
    U: Send + 'static,
    T: Stream<Item = Result<Message, WsError>> + Unpin,
{
    while let Some(item) = stream.next().await {
        let frame = match item {
            Ok(Message::Text(t)) => Frame::Text(Bytes::from(t)),
            Ok(Message::Binary(b)) => Frame::Binary(b),
            Ok(Message::Ping(p)) => Frame::Ping(p),
            Ok(Message::Pong(p)) => Frame::Pong(p),
            Ok(Message::Close(c)) => {
                Frame::Close(c.map(|c| (u16::from(c.code), c.reason.as_str().to_owned())))
            }
            Ok(Message::Frame(_)) => continue,
            Err(e @ (WsError::Capacity(_) | WsError::Utf8(_))) => {
                // tungstenite refused the frame before the hub saw it: over the
                // read limit (1009) or a text frame that is not UTF-8 (1007).
                // The hub closes with that code; keep reading (and discarding)
                // so the peer can read our close frame instead of having it
                // destroyed by a reset.
                let (code, reason) = match e {
                    WsError::Capacity(_) => (codes::TOO_BIG, "message too big"),
                    _ => (codes::INVALID_PAYLOAD, "text frame is not UTF-8"),
                };
                server.refused(id, code, reason).await;
                while let Some(Ok(_)) = stream.next().await {}
                return;
            }
            Err(_) => break,
        };
        if server.frame(id, frame).await.is_err() {
            return;
        }
    }
    server.transport_closed(id).await;
}

async fn write_loop<U, K>(
    mut sink: K,
    queue: async_channel::Receiver<Outbound>,
    server: &ServerHandle<U>,
    id: SessionId,
) where
    U: Send + 'static,
    K: Sink<Message, Error = WsError> + Unpin,
{
    while let Ok(first) = queue.recv().await {
        let (mut messages, mut bytes) = (0, 0);
        let mut close = None;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Outbound::Frame(frame) => {
                    messages += 1;
                    bytes += frame.len();
                    if let Some(message) = to_message(frame) {
                        if sink.feed(message).await.is_err() {
                            server.transport_closed(id).await;
                            return;
                        }
                    }
                }
                Outbound::Close { code, reason } => {
                    close = Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    });
                    break;
                }
            }
            if messages < MAX_FRAMES_PER_FLUSH {
                next = queue.try_recv().ok();
            }
        }
        if sink.flush().await.is_err() {
            server.transport_closed(id).await;
            return;
        }
        if messages > 0 {
            server.flushed(id, messages, bytes).await;
        }
        if let Some(close) = close {
            // An error here means the peer closed first; either way we are done.
            let _ = sink.send(Message::Close(Some(close))).await;
            return;
        }
    }
}

/// The tungstenite message for a hub frame. Pongs are answered by tungstenite
/// itself, so the hub's copy is only accounted, not written.
fn to_message(frame: OutFrame) -> Option<Message> {
    match frame {
        OutFrame::Text(b) => Utf8Bytes::try_from(b).ok().map(Message::Text),
        OutFrame::Ping(b) => Some(Message::Ping(b)),
        OutFrame::Pong(_) => None,
    }
}
