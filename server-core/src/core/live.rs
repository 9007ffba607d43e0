//! Connection inputs (opened, frame, flushed, closed, peer fault) and what
//! the hub's events mean for the rest of the server.

use std::time::Instant;

use live_core::{Command, Event, Frame, PeerFault, SessionId, sync_scope};
use sync_core::App;
use sync_core::handler::WS_TOPIC;

use super::ServerCore;
use crate::broker::BackplaneCommand;
use crate::output::{Notice, Output};
use crate::policy::{Policy, scope_maps_to_itself};

impl<U, P, A> ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    /// A WebSocket connection authenticated as `user` was upgraded. Returns
    /// its session id; during a shutdown the session is closed at once, and
    /// so is a session whose credential ([`Policy::expires_at`]) has already
    /// expired.
    pub fn handle_open(&mut self, now: Instant, user: U) -> SessionId {
        self.open(now, user, true)
    }

    /// As [`ServerCore::handle_open`], for a connection from this machine
    /// (loopback: local services, load tests, a reverse proxy in front):
    /// the per-connection message rate does not apply to it.
    pub fn handle_open_local(&mut self, now: Instant, user: U) -> SessionId {
        self.open(now, user, false)
    }

    fn open(&mut self, now: Instant, user: U, rate_limited: bool) -> SessionId {
        self.at(now);
        let id = self.hub.handle_open_authenticated(self.now, user.clone());
        if rate_limited {
            self.admit_session(id);
        }
        self.watch_expiry(id, &user);
        self.pump();
        id
    }

    /// A frame was read from the session's socket.
    pub fn handle_frame(&mut self, now: Instant, id: SessionId, frame: Frame) {
        self.at(now);
        if self.admit_frame(id, &frame)
            && let Err(frame) = self.hold_during_refresh(id, frame)
        {
            self.hub.handle_frame(self.now, id, frame);
        }
        self.pump();
    }

    /// The session's writer wrote `messages` frames totalling `bytes` payload
    /// bytes of its [`Output::Send`]s. Frees room in the session's queue and
    /// nothing else, so it needs no step after it: a loop reports every
    /// writer's flushes each turn, often thousands, and they stay cheap.
    pub fn handle_flushed(&mut self, now: Instant, id: SessionId, messages: usize, bytes: usize) {
        self.at(now);
        if let Err(e) = self.hub.handle_flushed(self.now, id, messages, bytes) {
            self.emit(Output::Notice(Notice::FlushRefused {
                message: e.to_string(),
            }));
        }
    }

    /// The transport ended without a close frame (reset, EOF, write error).
    pub fn handle_transport_closed(&mut self, now: Instant, id: SessionId) {
        self.at(now);
        self.hub.handle_transport_closed(self.now, id);
        self.pump();
    }

    /// The transport's WebSocket library refused what the peer sent (too
    /// big, invalid UTF-8, broken framing): the session is closed with the
    /// fault's code and the close is reported as the peer's fault.
    pub fn handle_peer_fault(&mut self, now: Instant, id: SessionId, fault: PeerFault) {
        self.at(now);
        self.hub.handle_peer_fault(self.now, id, fault);
        self.pump();
    }

    pub(super) fn on_hub_event(&mut self, event: Event<U>) {
        match event {
            Event::Authorize {
                ticket,
                id,
                command,
                topic,
            } => {
                // The core's authorizer never asks, but answer anyway rather
                // than let the session wait for the deadline.
                let policy = &*self.policy;
                let allowed = self
                    .hub
                    .auth(id)
                    .is_some_and(|user| match sync_scope(&topic) {
                        Some(_) if command == Command::Unsubscribe => true,
                        Some(scope) => scope_maps_to_itself(policy, user, scope),
                        None => policy.authorize_topic(user, &topic, command),
                    });
                self.hub.handle_authorize(self.now, ticket, allowed);
            }
            Event::Message { id, topic, data } => {
                if topic == WS_TOPIC {
                    self.ws_sync(id, &data);
                } else if topic == super::guard::REFRESH_TOPIC && self.config.token_refresh {
                    self.refresh_requested(id, &data);
                } else {
                    self.emit(Output::Message { id, topic, data });
                }
            }
            Event::Closed { id, reason, auth } => {
                self.guard.forget(id);
                self.emit(Output::Closed {
                    id,
                    reason,
                    user: auth,
                });
            }
            Event::TopicActive { topic } => {
                if let Some(b) = &mut self.broker {
                    b.active(topic);
                }
            }
            Event::TopicInactive { topic } => {
                if let Some(b) = &mut self.broker {
                    b.inactive(topic);
                }
            }
            Event::Published { topic, data, .. } => self.forward_to_broker(topic, data),
            Event::Append {
                topic,
                data,
                limits,
            } => {
                if self.broker.is_some() {
                    self.emit(Output::Broker(BackplaneCommand::Append {
                        topic,
                        data,
                        limits,
                    }));
                } else {
                    // No link yet: the publication stays on this node.
                    let _ = self.hub.deliver_unnumbered(self.now, &topic, &data);
                }
            }
            Event::PresenceChange {
                topic,
                member,
                joined,
            } if self.broker.is_some() && !crate::broker::is_local_only(&topic) => {
                self.emit(Output::Broker(BackplaneCommand::Presence {
                    topic,
                    member,
                    joined,
                }));
            }
            Event::PresenceQuery { request, topic } => {
                if self.broker.is_some() {
                    self.reads
                        .push(BackplaneCommand::ReadPresence { request, topic });
                } else {
                    self.hub.handle_presence_members(request, None);
                }
            }
            Event::ReadHistory {
                request,
                topic,
                after,
                limits,
            } => {
                if self.broker.is_some() {
                    self.reads.push(BackplaneCommand::ReadHistory {
                        request,
                        topic,
                        after,
                        limits,
                    });
                } else {
                    self.hub.handle_history_read(self.now, request, None);
                }
            }
            // Sessions are opened authenticated: nothing else is asked.
            _ => {}
        }
    }
}
