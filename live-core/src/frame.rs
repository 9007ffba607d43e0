//! WebSocket frames as the hub sees them: what the adapter reads from a socket
//! ([`Frame`]) and what it must write to one ([`OutFrame`]).
//!
//! Payloads are [`Bytes`] so one encoded publish is shared, not copied, by every
//! subscriber's queue.

use bytes::Bytes;

/// One complete (unfragmented) message or control frame read from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message. Invalid UTF-8 closes the session with 1007.
    Text(Bytes),
    /// A binary message; it may carry the same JSON envelope as a text message.
    Binary(Bytes),
    /// A ping; the hub answers with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong; it only proves the peer is alive.
    Pong(Bytes),
    /// A close frame, with its status code and reason when it carried any.
    Close(Option<(u16, String)>),
}

/// Input the transport's WebSocket library refused before the hub could see
/// it. The hub closes the session with the matching code and reports the
/// peer's fault as the close reason (not as a close the server chose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerFault {
    /// A message or frame over the read limit (1009).
    TooBig,
    /// A text message that is not UTF-8 (1007).
    InvalidUtf8,
    /// Framing that breaks RFC 6455: unmasked client frames, bad opcodes,
    /// fragmented control frames and the like (1002).
    ProtocolError,
}

/// One frame the adapter must write to a session's socket, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutFrame {
    /// A text message (a UTF-8 JSON envelope).
    Text(Bytes),
    /// A ping (heartbeat).
    Ping(Bytes),
    /// A pong answering the peer's ping. An adapter whose WebSocket library answers
    /// pings itself may skip writing it, but still reports it flushed.
    Pong(Bytes),
}

impl OutFrame {
    /// The payload.
    pub fn payload(&self) -> &Bytes {
        match self {
            OutFrame::Text(b) | OutFrame::Ping(b) | OutFrame::Pong(b) => b,
        }
    }

    /// Payload length, the figure the send-queue accounting uses.
    pub fn len(&self) -> usize {
        self.payload().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }
}
