//! Server-side commands (publish, send, close, subscribe, trim, shutdown)
//! and the broker link's inputs. Commands act at the latest input's time.

use std::time::Instant;

use bytes::Bytes;
use live_core::{HubError, SessionId};
use sync_core::App;

use super::{PendingTrim, ServerCore};
use crate::broker::{BackplaneCommand, PendingInterest, is_local_only};
use crate::error::ServerError;
use crate::output::{Notice, Output, Ticket};
use crate::policy::Policy;

impl<U, P, A> ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    /// Publishes `data` (one JSON value) on `topic` to every local
    /// subscriber, any topic including `sync:` ones, and through the broker
    /// (if attached) to the other nodes, `sync:` topics excepted. Returns how
    /// many local sessions it was queued for.
    pub fn publish(&mut self, topic: &str, data: Bytes) -> Result<usize, HubError> {
        let result = self.hub.publish_at(self.now, topic, &data);
        // A topic whose history the broker keeps went out as an append.
        if result.is_ok() && self.hub.numbered_by_broker(topic).is_none() {
            self.forward_to_broker(topic.to_owned(), data);
        }
        self.pump();
        result
    }

    /// Sends `{"topic":topic,"data":data}` to one session. Returns whether it
    /// was queued (`false`: the session overflowed and was closed).
    pub fn send(&mut self, to: SessionId, topic: &str, data: &[u8]) -> Result<bool, HubError> {
        let result = self.hub.send(to, topic, data);
        self.pump();
        result
    }

    /// Sends an already encoded envelope (valid JSON) to one session.
    pub fn send_raw(&mut self, to: SessionId, frame: Bytes) -> Result<bool, HubError> {
        let result = self.hub.send_raw(to, frame);
        self.pump();
        result
    }

    /// Closes a session with `code` and `reason`.
    pub fn close(&mut self, id: SessionId, code: u16, reason: &str) -> Result<(), HubError> {
        let result = self.hub.close(id, code, reason);
        self.pump();
        result
    }

    /// Subscribes a session to `topic` (no authorization: the server is
    /// trusted). Returns whether it was new.
    pub fn subscribe(&mut self, id: SessionId, topic: &str) -> Result<bool, HubError> {
        let result = self.hub.subscribe(id, topic);
        self.pump();
        result
    }

    /// Unsubscribes a session from `topic`. Returns whether it was subscribed.
    pub fn unsubscribe(&mut self, id: SessionId, topic: &str) -> Result<bool, HubError> {
        let result = self.hub.unsubscribe(id, topic);
        self.pump();
        result
    }

    /// Trims `scope`'s sync log: changes with cursor `< before` are dropped;
    /// a pull from `c` then works iff `c >= before - 1`. Finishes with
    /// [`Output::Done`] for the returned ticket once durable.
    pub fn trim(&mut self, scope: &str, before: u64) -> Result<Ticket, ServerError> {
        self.engine.trim(scope, before)?;
        let ticket = self.ticket();
        self.trims_open.push(PendingTrim {
            ticket,
            scope: scope.to_owned(),
            before,
        });
        self.pump();
        Ok(ticket)
    }

    /// Graceful shutdown: every session is closed with 1001, new sync
    /// requests are refused with 503, every push already taken is persisted
    /// and answered; then [`Output::Stopped`].
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.at(now);
        self.shutting_down = true;
        self.hub.shutdown(self.now);
        self.pump();
    }

    /// A broker link is attached: from now on the core emits
    /// [`Output::Broker`] commands (the hub must be configured with
    /// `backplane_events`).
    pub fn handle_broker_attached(&mut self, now: Instant) {
        self.at(now);
        if self.broker.is_none() {
            // Topics that already have local subscribers are asked for too.
            let mut interest = PendingInterest::default();
            let hub = &self.hub;
            for id in hub.sessions() {
                for topic in hub.topics_of(id).into_iter().flatten() {
                    interest.active(topic.to_owned());
                }
            }
            self.broker = Some(interest);
        }
        self.pump();
    }

    /// The broker link connected (`true`) or lost its connection, or
    /// could not connect (`false`): shown in the metrics
    /// (`live_broker_connected`, `live_broker_disconnects_total`). Reports
    /// before a link is attached are ignored.
    pub fn handle_broker_connection(&mut self, now: Instant, connected: bool) {
        self.at(now);
        if self.broker.is_none() {
            return;
        }
        let link = &mut self.broker_link;
        if link.connected && !connected {
            link.disconnects += 1;
        }
        link.connected = connected;
    }

    /// The broker link lost its connection and has it back: every topic with
    /// local subscribers is asked for again.
    pub fn handle_broker_restored(&mut self, now: Instant) {
        self.at(now);
        if let Some(b) = &mut self.broker {
            b.reset();
        }
        self.pump();
    }

    /// A publish from another node: delivered to this node's subscribers of
    /// `topic` only.
    pub fn handle_broker_message(&mut self, now: Instant, topic: &str, data: &[u8]) {
        self.at(now);
        if let Err(e) = self.hub.publish_at(self.now, topic, data) {
            self.emit(Output::Notice(Notice::RemoteRefused {
                topic: topic.to_owned(),
                message: e.to_string(),
            }));
        }
        self.pump();
    }

    /// A publication the broker numbered (any node's, this one's included)
    /// on a topic whose history it keeps: delivered to this node's
    /// subscribers of `topic` with its offset.
    pub fn handle_broker_numbered(
        &mut self,
        now: Instant,
        topic: &str,
        epoch: &str,
        offset: u64,
        data: &[u8],
    ) {
        self.at(now);
        if let Err(e) = self
            .hub
            .deliver_numbered(self.now, topic, epoch, offset, data)
        {
            self.emit(Output::Notice(Notice::RemoteRefused {
                topic: topic.to_owned(),
                message: e.to_string(),
            }));
        }
        self.pump();
    }

    /// The broker could not take [`BackplaneCommand::Append`]: the
    /// publication is delivered to this node's subscribers only, without an
    /// offset.
    pub fn handle_broker_append_failed(&mut self, now: Instant, topic: &str, data: &[u8]) {
        self.at(now);
        if let Err(e) = self.hub.deliver_unnumbered(self.now, topic, data) {
            self.emit(Output::Notice(Notice::RemoteRefused {
                topic: topic.to_owned(),
                message: e.to_string(),
            }));
        }
        self.pump();
    }

    /// The answer to [`BackplaneCommand::ReadHistory`] `request` (`None`:
    /// the broker could not be read).
    pub fn handle_history_read(
        &mut self,
        now: Instant,
        request: u64,
        read: Option<live_core::HistoryRead>,
    ) {
        self.at(now);
        self.hub.handle_history_read(self.now, request, read);
        self.pump();
    }

    /// Another node's session joined or left `topic`: announced to this
    /// node's watchers of it.
    pub fn handle_broker_presence(
        &mut self,
        now: Instant,
        topic: &str,
        member: &live_core::PresenceMember,
        joined: bool,
    ) {
        self.at(now);
        if let Err(e) = self.hub.deliver_presence(topic, member, joined) {
            self.emit(Output::Notice(Notice::RemoteRefused {
                topic: topic.to_owned(),
                message: e.to_string(),
            }));
        }
        self.pump();
    }

    /// The answer to [`BackplaneCommand::ReadPresence`] `request` (`None`:
    /// the broker could not be read; the query lists this node's
    /// subscribers only).
    pub fn handle_presence_members(
        &mut self,
        now: Instant,
        request: u64,
        members: Option<Vec<live_core::PresenceMember>>,
    ) {
        self.at(now);
        self.hub.handle_presence_members(request, members);
        self.pump();
    }

    /// Sends a local publish to the other nodes, if a broker is attached and
    /// the topic crosses nodes.
    pub(super) fn forward_to_broker(&mut self, topic: String, data: Bytes) {
        if self.broker.is_some() && !is_local_only(&topic) {
            self.emit(Output::Broker(BackplaneCommand::Publish { topic, data }));
        }
    }
}
