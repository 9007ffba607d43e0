//! Shared machinery: queueing frames under the bounds, fanning out, topic
//! membership and closing a session.

use std::sync::Arc;

use bytes::Bytes;

use super::Hub;
use super::backlog::behind_backlog;
use super::presence::Change;
use crate::envelope;
use crate::session::Phase;
use crate::{Action, CloseReason, ErrorCode, Event, OutFrame};

/// Longest close reason RFC 6455 allows (125-byte control payload minus the code).
const MAX_CLOSE_REASON: usize = 123;

impl<A> Hub<A> {
    /// Whether one more frame of `len` bytes fits this session's queue.
    pub(super) fn fits(&self, queued_messages: usize, queued_bytes: usize, len: usize) -> bool {
        let limits = &self.config.limits;
        queued_messages < limits.max_queued_messages
            && (queued_messages == 0 || queued_bytes.saturating_add(len) <= limits.max_queued_bytes)
    }

    /// Queues `frame` for the session at `key`, or closes it as a slow consumer when
    /// the frame does not fit. Returns whether the frame was queued.
    /// Behind a backlog (a long replay), the frame waits its turn there.
    pub(super) fn enqueue(&mut self, key: usize, frame: OutFrame) -> bool {
        let Some(s) = self.sessions.get_mut(key) else {
            return false;
        };
        if s.backlog.is_some() {
            let held = behind_backlog(s, move || frame) == Some(true);
            if !held {
                self.close_key(key, CloseReason::SlowConsumer);
            }
            return held;
        }
        let (messages, bytes) = (s.queued_messages, s.queued_bytes);
        if !self.fits(messages, bytes, frame.len()) {
            self.close_key(key, CloseReason::SlowConsumer);
            return false;
        }
        self.push_send(key, frame);
        true
    }

    /// Hands `frame` to the adapter for the session at `key` (which must
    /// exist), counting it in the session's queue.
    pub(super) fn push_send(&mut self, key: usize, frame: OutFrame) {
        let s = &mut self.sessions[key];
        s.queued_messages += 1;
        s.queued_bytes = s.queued_bytes.saturating_add(frame.len());
        if let OutFrame::Text(b) = &frame {
            self.metrics.messages_out += 1;
            self.metrics.bytes_out += b.len() as u64;
        }
        self.actions.push_back(Action::Send { id: s.id, frame });
    }

    /// Sends an error frame to the session at `key`.
    pub(super) fn send_error(&mut self, key: usize, code: ErrorCode, message: &str) {
        self.metrics.errors_sent += 1;
        self.enqueue(key, OutFrame::Text(envelope::encode_error(code, message)));
    }

    /// Queues one shared frame for every subscriber of `topic`; closes those whose
    /// queue overflows. Returns how many sessions it was queued for.
    pub(super) fn fan_out(&mut self, topic: &str, frame: Bytes) -> usize {
        self.fan_out_skipping(topic, frame, &[])
    }

    /// [`fan_out`](Hub::fan_out) to every subscriber but those in `skip`.
    pub(super) fn fan_out_skipping(&mut self, topic: &str, frame: Bytes, skip: &[usize]) -> usize {
        self.metrics.publishes += 1;
        let Some(subscribers) = self.topics.get(topic) else {
            return 0;
        };
        let limits = self.config.limits;
        let len = frame.len();
        let mut delivered = 0;
        let mut overflowed = Vec::new();
        for &key in subscribers {
            if skip.contains(&key) {
                continue;
            }
            let s = &mut self.sessions[key];
            if let Some(held) = behind_backlog(s, || OutFrame::Text(frame.clone())) {
                if !held {
                    overflowed.push(key);
                }
                continue;
            }
            let fits = s.queued_messages < limits.max_queued_messages
                && (s.queued_messages == 0
                    || s.queued_bytes.saturating_add(len) <= limits.max_queued_bytes);
            if !fits {
                overflowed.push(key);
                continue;
            }
            s.queued_messages += 1;
            s.queued_bytes = s.queued_bytes.saturating_add(len);
            self.actions.push_back(Action::Send {
                id: s.id,
                frame: OutFrame::Text(frame.clone()),
            });
            delivered += 1;
        }
        self.metrics.messages_out += delivered as u64;
        self.metrics.bytes_out += (delivered * len) as u64;
        for key in overflowed {
            self.close_key(key, CloseReason::SlowConsumer);
        }
        delivered
    }

    /// Adds the session at `key` to `topic`. Returns whether it was new.
    pub(super) fn subscribe_key(&mut self, key: usize, topic: &str) -> bool {
        if self.sessions[key].topics.contains(topic) {
            return false;
        }
        let name: Arc<str> = match self.topics.get_key_value(topic) {
            Some((name, _)) => name.clone(),
            None => {
                if self.config.backplane_events {
                    self.events.push_back(Event::TopicActive {
                        topic: topic.to_owned(),
                    });
                }
                Arc::from(topic)
            }
        };
        self.topics.entry(name.clone()).or_default().insert(key);
        self.sessions[key].topics.insert(name);
        self.metrics.subscriptions += 1;
        self.announce(Change::Join, topic, key);
        true
    }

    /// Removes the session at `key` from `topic`. Returns whether it was there.
    pub(super) fn unsubscribe_key(&mut self, key: usize, topic: &str) -> bool {
        if !self.sessions[key].topics.remove(topic) {
            return false;
        }
        self.leave_topic(key, topic);
        self.metrics.subscriptions -= 1;
        true
    }

    /// Removes the session at `key` from every topic. Returns how many it left.
    pub(super) fn unsubscribe_all_key(&mut self, key: usize) -> usize {
        let topics = std::mem::take(&mut self.sessions[key].topics);
        for topic in &topics {
            self.leave_topic(key, topic);
        }
        self.metrics.subscriptions -= topics.len();
        topics.len()
    }

    /// Removes `key` from the topic's subscriber set, and the topic when empty.
    /// Watchers of the topic hear the leave; an empty history of a topic
    /// left by all is forgotten.
    fn leave_topic(&mut self, key: usize, topic: &str) {
        if !self.watchers.is_empty() {
            self.watchers.remove(topic, key);
        }
        if let Some(set) = self.topics.get_mut(topic) {
            set.remove(&key);
            if self.config.broker_history {
                self.remote.left(topic, key, set.is_empty());
            }
            if set.is_empty() {
                self.topics.remove(topic);
                self.release_history(topic);
                if self.config.backplane_events {
                    self.events.push_back(Event::TopicInactive {
                        topic: topic.to_owned(),
                    });
                }
            }
        }
        self.announce(Change::Leave, topic, key);
    }

    /// Ends the session at `key`: sends the close frame (unless the transport is
    /// already gone), forgets every trace of it, and reports it closed.
    pub(super) fn close_key(&mut self, key: usize, reason: CloseReason) {
        if !self.sessions.contains(key) {
            return;
        }
        // It hears nothing more: announcing its leaves may close watchers as
        // slow, whose own leaves must not be queued for (or close) this
        // session while it is half gone.
        if !self.watchers.is_empty() {
            for topic in &self.sessions[key].topics {
                self.watchers.remove(topic, key);
            }
        }
        self.unsubscribe_all_key(key);
        if !self.presence_queries.is_empty() {
            self.presence_queries.retain(|_, (k, _, _)| *k != key);
        }
        let Some(s) = self.sessions.try_remove(key) else {
            // Closed meanwhile by what its leaving set off; reported then.
            return;
        };
        self.by_id.remove(&s.id);
        if s.backlog.is_some() {
            self.backlogs -= 1;
        }
        if let Some((at, why)) = s.timer {
            self.timers.remove(&(at, key, why));
        }
        if let Some(p) = &s.pending {
            self.tickets.remove(&p.ticket.0);
        }
        match reason {
            CloseReason::SlowConsumer => self.metrics.slow_consumer_closes += 1,
            CloseReason::TooBig | CloseReason::InvalidUtf8 | CloseReason::ProtocolError => {
                self.metrics.peer_fault_closes += 1;
            }
            _ => {}
        }
        if !matches!(reason, CloseReason::TransportClosed) {
            let code = match reason {
                // A peer close without a status is answered with a plain normal close.
                CloseReason::Peer { code: 1005, .. } => crate::close::codes::NORMAL,
                _ => reason.code(),
            };
            self.actions.push_back(Action::Close {
                id: s.id,
                code,
                reason: truncate_reason(reason.text()),
            });
        }
        let auth = match s.phase {
            Phase::Active { auth } => Some(auth),
            Phase::Authenticating { .. } => None,
        };
        self.events.push_back(Event::Closed {
            id: s.id,
            reason,
            auth,
        });
    }
}

/// Cuts a close reason to what fits a close frame, on a character boundary.
pub(super) fn truncate_reason(reason: &str) -> String {
    if reason.len() <= MAX_CLOSE_REASON {
        return reason.to_owned();
    }
    let mut end = MAX_CLOSE_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}
