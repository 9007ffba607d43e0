//! Inputs from the transport: sessions opening, frames read, writes flushed,
//! transports ending; and the interpretation of client messages.

use std::time::Instant;

use bytes::Bytes;

use super::Hub;
use super::timers::after;
use crate::close::is_valid_code;
use crate::session::{Phase, Session};
use crate::{CloseReason, Event, Frame, HubError, OutFrame, PeerFault, SessionId};

/// Largest control-frame payload RFC 6455 allows.
const MAX_CONTROL_PAYLOAD: usize = 125;

impl<A> Hub<A> {
    /// A transport was accepted (after the handshake rules passed). The hub emits
    /// [`Event::Authenticate`] for it; answer with
    /// [`handle_auth`](Hub::handle_auth) before the auth deadline. Messages the
    /// client sends meanwhile are held and processed, in order, once it is
    /// authenticated.
    pub fn handle_open(&mut self, now: Instant) -> SessionId {
        self.clock = Some(now);
        let deadline = self.config.timers.auth_timeout.and_then(|d| after(now, d));
        let key = self.open(now, Phase::Authenticating { deadline });
        let id = self.sessions[key].id;
        if self.shut_down {
            self.close_key(key, CloseReason::Shutdown);
        } else {
            self.events.push_back(Event::Authenticate { id });
            self.reschedule(key);
        }
        id
    }

    /// A transport was accepted whose upgrade request the adapter already
    /// authenticated as `auth`; the session is active at once.
    pub fn handle_open_authenticated(&mut self, now: Instant, auth: A) -> SessionId {
        self.clock = Some(now);
        let key = self.open(now, Phase::Active { auth });
        let id = self.sessions[key].id;
        if self.shut_down {
            self.close_key(key, CloseReason::Shutdown);
        } else {
            self.activate(now, key);
        }
        id
    }

    /// A frame was read from the session's socket. Peer faults (too big, invalid
    /// UTF-8, bad control frames) close the session; bad messages earn an error
    /// frame. Ignored when the session is no longer open.
    pub fn handle_frame(&mut self, now: Instant, id: SessionId, frame: Frame) {
        self.clock = Some(now);
        let Some(&key) = self.by_id.get(&id) else {
            return;
        };
        self.sessions[key].last_received = now;
        match frame {
            Frame::Text(payload) => self.handle_data(now, key, payload, true),
            Frame::Binary(payload) => self.handle_data(now, key, payload, false),
            Frame::Ping(payload) => {
                if payload.len() > MAX_CONTROL_PAYLOAD {
                    self.close_key(key, CloseReason::ProtocolError);
                } else {
                    self.enqueue(key, OutFrame::Pong(payload));
                }
            }
            Frame::Pong(_) => {}
            Frame::Close(None) => self.close_key(
                key,
                CloseReason::Peer {
                    code: 1005,
                    reason: String::new(),
                },
            ),
            Frame::Close(Some((code, reason))) => {
                if is_valid_code(code) && reason.len() <= MAX_CONTROL_PAYLOAD - 2 {
                    self.close_key(key, CloseReason::Peer { code, reason });
                } else {
                    self.close_key(key, CloseReason::ProtocolError);
                }
            }
        }
        if self.sessions.contains(key) {
            self.reschedule(key);
        }
    }

    /// The adapter wrote `messages` frames totalling `bytes` payload bytes of this
    /// session's [`Action::Send`](crate::Action::Send)s (pongs and pings included).
    ///
    /// Ignored when the session is no longer open; an error when it claims more
    /// than was queued (the queue is left unchanged).
    pub fn handle_flushed(
        &mut self,
        now: Instant,
        id: SessionId,
        messages: usize,
        bytes: usize,
    ) -> Result<(), HubError> {
        let _ = now;
        let Some(&key) = self.by_id.get(&id) else {
            return Ok(());
        };
        let s = &mut self.sessions[key];
        if messages > s.queued_messages || bytes > s.queued_bytes {
            return Err(HubError::FlushedTooMuch {
                id,
                messages,
                bytes,
                queued_messages: s.queued_messages,
                queued_bytes: s.queued_bytes,
            });
        }
        s.queued_messages -= messages;
        s.queued_bytes -= bytes;
        if s.backlog.is_some() {
            self.drain_backlog(key);
        }
        Ok(())
    }

    /// The transport ended without a close frame (reset, EOF, write error). The
    /// session is reported closed; no close action is emitted. Ignored when the
    /// session is no longer open.
    pub fn handle_transport_closed(&mut self, now: Instant, id: SessionId) {
        let _ = now;
        if let Some(&key) = self.by_id.get(&id) {
            self.close_key(key, CloseReason::TransportClosed);
        }
    }

    /// The transport refused what the peer sent before it became a frame (see
    /// [`PeerFault`]): the session is closed with the fault's code, and the
    /// close is reported as the peer's fault. Ignored when the session is no
    /// longer open.
    pub fn handle_peer_fault(&mut self, now: Instant, id: SessionId, fault: PeerFault) {
        let _ = now;
        let Some(&key) = self.by_id.get(&id) else {
            return;
        };
        let reason = match fault {
            PeerFault::TooBig => CloseReason::TooBig,
            PeerFault::InvalidUtf8 => CloseReason::InvalidUtf8,
            PeerFault::ProtocolError => CloseReason::ProtocolError,
        };
        self.close_key(key, reason);
    }

    /// Creates the session record with a fresh id.
    fn open(&mut self, now: Instant, phase: Phase<A>) -> usize {
        let id = self.fresh_id();
        let key = self.sessions.insert(Session::new(id, now, phase));
        self.by_id.insert(id, key);
        self.metrics.sessions_opened += 1;
        key
    }

    /// An id no open session has. Asks the generator again on a collision; a
    /// generator stuck on open ids falls back to probing upwards.
    fn fresh_id(&mut self) -> SessionId {
        let mut raw = self.ids.next_id();
        for _ in 0..16 {
            if !self.by_id.contains_key(&SessionId::from_u64(raw)) {
                return SessionId::from_u64(raw);
            }
            raw = self.ids.next_id();
        }
        while self.by_id.contains_key(&SessionId::from_u64(raw)) {
            raw = raw.wrapping_add(1);
        }
        SessionId::from_u64(raw)
    }

    /// Starts the heartbeat of a newly active session and processes what it sent
    /// while authenticating.
    pub(super) fn activate(&mut self, now: Instant, key: usize) {
        self.sessions[key].next_ping = self.config.timers.ping_interval.and_then(|d| after(now, d));
        self.process_held(now, key);
        if self.sessions.contains(key) {
            self.reschedule(key);
        }
    }

    fn handle_data(&mut self, now: Instant, key: usize, payload: Bytes, text: bool) {
        self.metrics.messages_in += 1;
        self.metrics.bytes_in += payload.len() as u64;
        if payload.len() > self.config.limits.read_limit {
            self.close_key(key, CloseReason::TooBig);
            return;
        }
        if text && std::str::from_utf8(&payload).is_err() {
            self.close_key(key, CloseReason::InvalidUtf8);
            return;
        }
        let s = &mut self.sessions[key];
        if s.is_blocked() {
            let limits = &self.config.limits;
            if s.held.len() >= limits.max_pending_inbound
                || s.held_bytes + payload.len() > limits.read_limit
            {
                self.close_key(key, CloseReason::TooManyPending);
            } else {
                s.held_bytes += payload.len();
                s.held.push_back(payload);
            }
            return;
        }
        self.process_message(now, key, payload);
    }
}
