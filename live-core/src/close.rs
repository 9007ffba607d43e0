//! Close codes and the reason a session ended.

/// WebSocket close codes the hub uses (RFC 6455 section 7.4 plus two
/// application codes).
pub mod codes {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Going away: the server shuts down.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error: a frame that breaks RFC 6455.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Invalid payload data: a text frame that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation: authentication rejected or timed out, too much input
    /// before authentication.
    pub const POLICY: u16 = 1008;
    /// Message too big: a frame over the read limit.
    pub const TOO_BIG: u16 = 1009;
    /// Internal error.
    pub const INTERNAL: u16 = 1011;
    /// Idle timeout: nothing received for too long.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// The session's token expired and was not refreshed in time.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// Slow consumer: the session's send queue overflowed.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Rate limited: the session kept sending faster than it may after being
    /// told so with `rate_limited` error frames.
    pub const RATE_LIMITED: u16 = 4029;
}

/// Why a session ended. Reported exactly once per session, in
/// [`Event::Closed`](crate::Event::Closed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Server code called [`Hub::close`](crate::Hub::close).
    Server {
        /// The code sent to the peer.
        code: u16,
        /// The reason sent to the peer.
        reason: String,
    },
    /// The peer sent a close frame.
    Peer {
        /// The peer's code (1005 "no status" when its frame carried none).
        code: u16,
        /// The peer's reason.
        reason: String,
    },
    /// The transport ended without a close frame (the adapter called
    /// [`Hub::handle_transport_closed`](crate::Hub::handle_transport_closed)).
    TransportClosed,
    /// Authentication answered with a rejection.
    AuthRejected {
        /// The code sent to the peer.
        code: u16,
        /// The reason sent to the peer.
        reason: String,
    },
    /// Authentication not answered before the deadline (1008).
    AuthTimeout,
    /// Nothing received within the idle timeout (4000).
    IdleTimeout,
    /// The send queue overflowed (4008).
    SlowConsumer,
    /// A frame over the read limit (1009).
    TooBig,
    /// A text frame that is not UTF-8 (1007).
    InvalidUtf8,
    /// A frame that breaks RFC 6455, such as a ping over 125 bytes or a close
    /// frame with an invalid code (1002).
    ProtocolError,
    /// Too many messages arrived while the session waited for authentication or
    /// authorization (1008).
    TooManyPending,
    /// The hub shut down (1001).
    Shutdown,
}

impl CloseReason {
    /// The close code this reason sends to the peer (or, for [`CloseReason::Peer`],
    /// the code the peer sent; 1006 for a transport that vanished).
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::Server { code, .. }
            | CloseReason::Peer { code, .. }
            | CloseReason::AuthRejected { code, .. } => *code,
            CloseReason::TransportClosed => 1006,
            CloseReason::AuthTimeout | CloseReason::TooManyPending => codes::POLICY,
            CloseReason::IdleTimeout => codes::IDLE_TIMEOUT,
            CloseReason::SlowConsumer => codes::SLOW_CONSUMER,
            CloseReason::TooBig => codes::TOO_BIG,
            CloseReason::InvalidUtf8 => codes::INVALID_PAYLOAD,
            CloseReason::ProtocolError => codes::PROTOCOL_ERROR,
            CloseReason::Shutdown => codes::GOING_AWAY,
        }
    }

    /// The reason text sent to the peer in the close frame.
    pub fn text(&self) -> &str {
        match self {
            CloseReason::Server { reason, .. }
            | CloseReason::Peer { reason, .. }
            | CloseReason::AuthRejected { reason, .. } => reason,
            CloseReason::TransportClosed => "transport closed",
            CloseReason::AuthTimeout => "authentication timeout",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::TooBig => "message too big",
            CloseReason::InvalidUtf8 => "invalid utf-8",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::TooManyPending => "too many messages before authorization",
            CloseReason::Shutdown => "server shutting down",
        }
    }
}

/// Whether `code` may appear in a close frame, sent or received (RFC 6455
/// section 7.4: 1000-1003 and 1007-1014 are defined or registered, 3000-4999 are
/// for libraries and applications; 1004-1006 and 1015 must never be sent).
pub(crate) fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}
