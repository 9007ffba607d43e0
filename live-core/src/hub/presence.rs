//! Presence on the hub's side: announcing joins and leaves to the sessions
//! watching a topic, and answering `presence` queries.
//!
//! With [`HubConfig::broker_presence`](crate::HubConfig::broker_presence)
//! the members of a topic are spread over nodes: every join and leave of a
//! local session is also reported ([`Event::PresenceChange`]) for the broker
//! to record and pass on; other nodes' changes come back through
//! [`Hub::deliver_presence`] and are announced to local watchers; a query
//! asks the broker for the members it holds ([`Event::PresenceQuery`]) and
//! is answered with them and the local subscribers
//! ([`Hub::handle_presence_members`]).

use bytes::Bytes;

use super::Hub;
use super::backlog::behind_backlog;
use crate::authorize::sync_scope;
use crate::presence::{encode_change, encode_list};
use crate::{Action, CloseReason, Event, HubError, OutFrame, PresenceMember};

/// Which change a presence frame announces.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    Join,
    Leave,
}

impl<A> Hub<A> {
    /// Tells the watchers of `topic` (except the session itself) that the
    /// session at `key` joined or left it, and the broker when presence
    /// crosses nodes. The session must still be in the slab.
    pub(super) fn announce(&mut self, change: Change, topic: &str, key: usize) {
        let shared = self.config.broker_presence && sync_scope(topic).is_none();
        if self.watchers.is_empty() && !shared {
            return;
        }
        let targets = self.watchers.others(topic, key);
        if targets.is_empty() && !shared {
            return;
        }
        let Some(s) = self.sessions.get(key) else {
            return;
        };
        let user = s.auth().and_then(|a| self.authorizer.presence_user(a));
        let session = s.id.to_string();
        let kind = match change {
            Change::Join => "join",
            Change::Leave => "leave",
        };
        if !targets.is_empty() {
            let frame = encode_change(kind, topic, &session, user.as_deref());
            self.send_shared(&targets, frame);
        }
        if shared {
            self.events.push_back(Event::PresenceChange {
                topic: topic.to_owned(),
                member: PresenceMember { session, user },
                joined: matches!(change, Change::Join),
            });
        }
    }

    /// Another node's session joined or left `topic`: announced to every
    /// local watcher of it.
    pub fn deliver_presence(
        &mut self,
        topic: &str,
        member: &PresenceMember,
        joined: bool,
    ) -> Result<usize, HubError> {
        self.check_topic(topic)?;
        let targets = self.watchers.others(topic, usize::MAX);
        if targets.is_empty() {
            return Ok(0);
        }
        let kind = if joined { "join" } else { "leave" };
        let frame = encode_change(kind, topic, &member.session, member.user.as_deref());
        self.send_shared(&targets, frame);
        Ok(targets.len())
    }

    /// Answers a presence query: every subscriber of `topic`, in a
    /// deterministic order; across nodes, asks the broker first.
    pub(super) fn answer_presence(&mut self, key: usize, topic: &str) {
        if self.config.broker_presence && sync_scope(topic).is_none() {
            self.next_presence_query += 1;
            let request = self.next_presence_query;
            self.presence_queries
                .insert(request, (key, self.sessions[key].id, topic.to_owned()));
            self.events.push_back(Event::PresenceQuery {
                request,
                topic: topic.to_owned(),
            });
            return;
        }
        self.answer_presence_with(key, topic, &[]);
    }

    /// The broker's members of the topic of presence query `request`
    /// (`None`: it could not be read; the answer lists this node's
    /// subscribers only). The answer lists this node's subscribers, then the
    /// broker's other members in its order. An unknown request (its session
    /// closed) is ignored.
    pub fn handle_presence_members(&mut self, request: u64, members: Option<Vec<PresenceMember>>) {
        let Some((key, id, topic)) = self.presence_queries.remove(&request) else {
            return;
        };
        if self.sessions.get(key).is_none_or(|s| s.id != id) {
            return;
        }
        self.answer_presence_with(key, &topic, &members.unwrap_or_default());
    }

    /// Presence queries waiting for the broker.
    pub fn presence_queries_waiting(&self) -> usize {
        self.presence_queries.len()
    }

    fn answer_presence_with(&mut self, key: usize, topic: &str, remote: &[PresenceMember]) {
        let keys: Vec<usize> = self
            .topics
            .get(topic)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        let mut members: Vec<(String, Option<String>)> = keys
            .into_iter()
            .filter_map(|k| self.sessions.get(k))
            .map(|s| {
                let user = s.auth().and_then(|a| self.authorizer.presence_user(a));
                (s.id.to_string(), user)
            })
            .collect();
        let local: std::collections::BTreeSet<String> =
            members.iter().map(|(s, _)| s.clone()).collect();
        let mut seen = std::collections::BTreeSet::new();
        for m in remote {
            if !local.contains(&m.session) && seen.insert(m.session.clone()) {
                members.push((m.session.clone(), m.user.clone()));
            }
        }
        let frame = encode_list(
            topic,
            members.iter().map(|(s, u)| (s.as_str(), u.as_deref())),
        );
        self.enqueue(key, OutFrame::Text(frame));
    }

    /// Queues one shared frame for each of `keys` still open; closes those
    /// whose queue overflows, after the others were served.
    fn send_shared(&mut self, keys: &[usize], frame: Bytes) {
        let len = frame.len();
        let mut overflowed = Vec::new();
        for &key in keys {
            let Some(s) = self.sessions.get_mut(key) else {
                continue;
            };
            if let Some(held) = behind_backlog(s, || OutFrame::Text(frame.clone())) {
                if !held {
                    overflowed.push(key);
                }
                continue;
            }
            let (messages, bytes) = (s.queued_messages, s.queued_bytes);
            if !self.fits(messages, bytes, len) {
                overflowed.push(key);
                continue;
            }
            let s = &mut self.sessions[key];
            s.queued_messages += 1;
            s.queued_bytes = s.queued_bytes.saturating_add(len);
            self.metrics.messages_out += 1;
            self.metrics.bytes_out += len as u64;
            self.actions.push_back(Action::Send {
                id: s.id,
                frame: OutFrame::Text(frame.clone()),
            });
        }
        for key in overflowed {
            if self.sessions.contains(key) {
                self.close_key(key, CloseReason::SlowConsumer);
            }
        }
    }
}
