//! The WebSocket connection loop, generic over any `Stream + Sink` of
//! tungstenite messages (async-tungstenite's `WebSocketStream<S>` for any
//! futures-io socket), so both adapters run this one copy.
//!
//! One task per connection runs two halves side by side:
//! - the reader turns every frame into a hub input, in order;
//! - the writer waits for queued items, takes everything queued at once,
//!   writes it with `feed` (no flush per frame), flushes once, and reports
//!   the flushed messages and bytes to the server core (through the flush board, see
//!   `outbox.rs`), which is how the hub knows each session's true queue
//!   depth. A connection that wrote within the last
//!   [`crate::ServerConfig::write_coalesce`] waits until that long after its
//!   last write, so a sustained stream goes out several frames per write; a
//!   quiet connection writes at once.
//!
//! When the hub closes the session, the writer writes the close frame and
//! stops; the connection then has [`crate::ServerConfig::close_grace`] to
//! finish the close handshake (or, for a slow consumer whose socket does not
//! drain, to take its last frames) before the socket is dropped.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::error::ProtocolError;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::future::{join, select};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use live_core::{Frame, OutFrame, PeerFault, SessionId};

use crate::handle::ServerHandle;
use crate::outbox::{Conn, Outbound, Outbox};
use crate::runtime::Runtime;

/// Serves one upgraded WebSocket for a session authenticated as `user`, until
/// it ends. `local`: the peer is on this machine (loopback), which the
/// per-connection message rate does not limit.
///
/// The returned future lives as long as the connection, so its size is paid
/// per open connection: the socket is split (moved to the heap) before it
/// starts, and the steps that run once or rarely (opening, the close
/// handshake, the grace period, a full inbox) keep their state boxed only
/// while they run.
pub fn run<R, U, W>(
    rt: R,
    server: ServerHandle<U>,
    ws: W,
    user: U,
    local: bool,
    close_grace: Duration,
    write_coalesce: Duration,
) -> impl Future<Output = ()> + Send
where
    R: Runtime,
    U: Send + 'static,
    W: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin,
{
    let (sink, stream) = ws.split();
    let outbox = Arc::new(Outbox::default());
    let conn = Conn {
        outbox: outbox.clone(),
    };
    async move {
        let mut sink = sink;
        let Ok(id) = server.open(user, conn, local).await else {
            let close = CloseFrame {
                code: CloseCode::Away,
                reason: "server stopped".into(),
            };
            let _ = Box::pin(sink.send(Message::Close(Some(close)))).await;
            return;
        };
        let work = join(
            write_loop(&rt, sink, &outbox, &server, id, write_coalesce),
            read_loop(stream, &server, id),
        );
        let deadline = async {
            // When the hub closed the session or forgot it (transport gone),
            // the grace period starts.
            outbox.ending().await;
            Box::pin(rt.sleep_until(rt.now() + close_grace)).await;
        };
        select(std::pin::pin!(work), std::pin::pin!(deadline)).await;
    }
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
            Err(e) => {
                // tungstenite refused the input before the hub saw it (a
                // message over the read limit, text that is not UTF-8, broken
                // framing): the core closes the session for the peer's fault.
                // Keep reading (and discarding) so the peer can read our close
                // frame instead of having it destroyed by a reset.
                let Some(fault) = peer_fault(&e) else {
                    break;
                };
                Box::pin(server.peer_fault(id, fault)).await;
                while let Some(Ok(_)) = stream.next().await {}
                return;
            }
        };
        if server.frame(id, frame).await.is_err() {
            return;
        }
    }
    Box::pin(server.transport_closed(id)).await;
}

async fn write_loop<R, U, K>(
    rt: &R,
    mut sink: K,
    outbox: &Outbox,
    server: &ServerHandle<U>,
    id: SessionId,
    coalesce: Duration,
) where
    R: Runtime,
    U: Send + 'static,
    K: Sink<Message, Error = WsError> + Unpin,
{
    let mut batch = VecDeque::new();
    let coalesce = coalesce.min(MAX_COALESCE);
    // When the last write ended, while coalescing is on.
    let mut last_write: Option<Instant> = None;
    while outbox.take_all(&mut batch).await {
        if let Some(until) = coalesce_until(last_write, coalesce, || rt.now()) {
            // Boxed: the sleep's state lives only while it runs, not in
            // every idle connection's future.
            Box::pin(rt.sleep_until(until)).await;
            outbox.take_ready(&mut batch);
        }
        let (mut messages, mut bytes) = (0, 0);
        let mut close = None;
        while let Some(item) = batch.pop_front() {
            match item {
                Outbound::Frame(frame) => {
                    messages += 1;
                    bytes += frame.len();
                    if let Some(message) = to_message(frame) {
                        if sink.feed(message).await.is_err() {
                            Box::pin(server.transport_closed(id)).await;
                            return;
                        }
                    }
                }
                Outbound::Close { code, reason } => {
                    close = Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    });
                    batch.clear();
                    break;
                }
            }
        }
        // Reported once every frame of the batch is in the transport's hands
        // (written, or in its last write buffer), before the final flush: a
        // peer can read the batch's last message as soon as the flush writes
        // it, and the hub must not still count it queued when that peer's
        // next request arrives. A peer that stops reading stalls the feeding
        // above, so its frames stay counted until they overflow its queue.
        if messages > 0 {
            server.flushed(id, messages, bytes);
        }
        if sink.flush().await.is_err() {
            Box::pin(server.transport_closed(id)).await;
            return;
        }
        if !coalesce.is_zero() {
            last_write = Some(rt.now());
        }
        if let Some(close) = close {
            // An error here means the peer closed first; either way we are done.
            let _ = Box::pin(sink.send(Message::Close(Some(close)))).await;
            return;
        }
    }
}

/// Until when a writer that has frames to write waits first: `coalesce`
/// after its last write, if that is still ahead; `None` (write now) for a
/// connection that was quiet that long, or with coalescing off. `now` is only
/// read when there was a last write. Generic over the instant type so it is
/// tested without a clock.
fn coalesce_until<T>(
    last_write: Option<T>,
    coalesce: Duration,
    now: impl FnOnce() -> T,
) -> Option<T>
where
    T: Copy + Ord + std::ops::Add<Duration, Output = T>,
{
    let until = last_write? + coalesce;
    (now() < until).then_some(until)
}

/// The longest coalescing window used, whatever is configured: a frame
/// waits at most this long for company.
const MAX_COALESCE: Duration = Duration::from_secs(1);

/// Which peer fault a read error is; `None` for a transport that simply
/// ended.
fn peer_fault(e: &WsError) -> Option<PeerFault> {
    match e {
        WsError::Capacity(_) => Some(PeerFault::TooBig),
        WsError::Utf8(_) => Some(PeerFault::InvalidUtf8),
        // A peer that vanished is not a protocol fault: the transport ended.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some(PeerFault::ProtocolError),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use async_tungstenite::tungstenite::error::CapacityError;

    #[test]
    fn read_errors_map_to_peer_faults_and_a_vanished_peer_to_none() {
        let too_big = WsError::Capacity(CapacityError::MessageTooLong {
            size: 10,
            max_size: 5,
        });
        assert_eq!(peer_fault(&too_big), Some(PeerFault::TooBig));
        assert_eq!(
            peer_fault(&WsError::Utf8("bad".into())),
            Some(PeerFault::InvalidUtf8)
        );
        let masked = WsError::Protocol(ProtocolError::UnmaskedFrameFromClient);
        assert_eq!(peer_fault(&masked), Some(PeerFault::ProtocolError));
        let reset = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(peer_fault(&reset), None);
        assert_eq!(peer_fault(&WsError::ConnectionClosed), None);
    }

    #[test]
    fn only_a_connection_that_wrote_recently_waits_and_only_until_the_window_ends() {
        let t0 = Duration::from_secs(100);
        let ms = Duration::from_millis;
        // Never wrote, or coalescing off: write at once, without reading the clock.
        assert_eq!(
            coalesce_until(None, ms(2), || -> Duration { unreachable!() }),
            None
        );
        assert_eq!(coalesce_until(Some(t0), ms(0), || t0), None);
        // Wrote 0.5 ms ago: wait until 2 ms after that write.
        assert_eq!(
            coalesce_until(Some(t0), ms(2), || t0 + ms(1) / 2),
            Some(t0 + ms(2))
        );
        // Quiet for the whole window: write at once.
        assert_eq!(coalesce_until(Some(t0), ms(2), || t0 + ms(2)), None);
        assert_eq!(coalesce_until(Some(t0), ms(2), || t0 + ms(50)), None);
    }

    #[test]
    fn hub_frames_become_tungstenite_messages_and_pongs_are_left_to_tungstenite() {
        let text = to_message(OutFrame::Text(Bytes::from_static(b"{}")));
        assert_eq!(text, Some(Message::text("{}")));
        let ping = to_message(OutFrame::Ping(Bytes::new()));
        assert_eq!(ping, Some(Message::Ping(Bytes::new())));
        assert_eq!(to_message(OutFrame::Pong(Bytes::new())), None);
    }
}
