//! Commands of the server code: topic membership, publishing, sending, closing,
//! shutting down. They bypass the authorizer (the server is trusted) but not the
//! send-queue bounds.

use std::time::Instant;

use bytes::Bytes;

use super::Hub;
use crate::close::is_valid_code;
use crate::envelope;
use crate::{CloseReason, HubError, OutFrame, SessionId};

impl<A> Hub<A> {
    /// Subscribes an active session to `topic`. Returns whether it was new. The
    /// per-session topic limit applies to clients only.
    pub fn subscribe(&mut self, id: SessionId, topic: &str) -> Result<bool, HubError> {
        let key = self.active_key(id)?;
        self.check_topic(topic)?;
        Ok(self.subscribe_key(key, topic))
    }

    /// Unsubscribes a session from `topic`. Returns whether it was subscribed.
    pub fn unsubscribe(&mut self, id: SessionId, topic: &str) -> Result<bool, HubError> {
        let key = self.key(id)?;
        Ok(self.unsubscribe_key(key, topic))
    }

    /// Unsubscribes a session from every topic. Returns how many it left.
    pub fn unsubscribe_all(&mut self, id: SessionId) -> Result<usize, HubError> {
        let key = self.key(id)?;
        Ok(self.unsubscribe_all_key(key))
    }

    /// Publishes `data` (one JSON value, sent as is) on `topic`, any topic
    /// including `sync:` ones. The envelope is encoded once and its bytes shared by
    /// every subscriber. Returns how many sessions it was queued for; subscribers
    /// whose queue overflows are closed as slow consumers.
    ///
    /// On a topic with history the publication is numbered and kept, stamped
    /// with the latest instant an input brought; [`publish_at`](Hub::publish_at)
    /// gives the instant itself. On a topic whose history a broker keeps
    /// ([`HubConfig::broker_history`](crate::HubConfig::broker_history)) it
    /// becomes an [`Event::Append`](crate::Event::Append) and is queued for
    /// no one yet (`Ok(0)`).
    pub fn publish(&mut self, topic: &str, data: &[u8]) -> Result<usize, HubError> {
        self.check_topic(topic)?;
        let data = envelope::validate_json(data).map_err(HubError::InvalidJson)?;
        if self.append_to_broker(topic, data) {
            // The broker numbers it; it comes back through `deliver_numbered`.
            return Ok(0);
        }
        let frame = self.encode_publication(self.clock, topic, data);
        Ok(self.fan_out(topic, frame))
    }

    /// [`publish`](Hub::publish) at `now`: the instant a history entry's TTL
    /// counts from.
    pub fn publish_at(
        &mut self,
        now: Instant,
        topic: &str,
        data: &[u8],
    ) -> Result<usize, HubError> {
        self.clock = Some(now);
        self.publish(topic, data)
    }

    /// Sends `{"topic":topic,"data":data}` to every authenticated session,
    /// subscribed or not (mizu's `Broadcast`). Encoded once, shared by all.
    /// Returns how many sessions it was queued for.
    pub fn broadcast(&mut self, topic: &str, data: &[u8]) -> Result<usize, HubError> {
        self.check_topic(topic)?;
        let data = envelope::validate_json(data).map_err(HubError::InvalidJson)?;
        let frame = envelope::encode(topic, data);
        let keys: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.auth().is_some())
            .map(|(key, _)| key)
            .collect();
        let mut queued = 0;
        for key in keys {
            if self.enqueue(key, OutFrame::Text(frame.clone())) {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Sends `{"topic":topic,"data":data}` to one session (authenticating or
    /// active). Returns whether it was queued (`false`: the session overflowed and
    /// was closed as a slow consumer).
    pub fn send(&mut self, id: SessionId, topic: &str, data: &[u8]) -> Result<bool, HubError> {
        let key = self.key(id)?;
        self.check_topic(topic)?;
        let data = envelope::validate_json(data).map_err(HubError::InvalidJson)?;
        Ok(self.enqueue(key, OutFrame::Text(envelope::encode(topic, data))))
    }

    /// Sends an error frame `{"topic":"error","data":{"code","message"}}` to
    /// one session, for refusals decided outside the hub (a refused token
    /// refresh, a rate limit). Returns whether it was queued, as
    /// [`send`](Hub::send).
    pub fn send_error_frame(
        &mut self,
        id: SessionId,
        code: crate::ErrorCode,
        message: &str,
    ) -> Result<bool, HubError> {
        let key = self.key(id)?;
        self.metrics.errors_sent += 1;
        Ok(self.enqueue(key, OutFrame::Text(envelope::encode_error(code, message))))
    }

    /// Replaces the authentication value of an active session (a refreshed
    /// credential) and returns the old one. Its topics stay as they are: the
    /// caller decides which of them the new value still allows.
    pub fn replace_auth(&mut self, id: SessionId, auth: A) -> Result<A, HubError> {
        let key = self.active_key(id)?;
        match &mut self.sessions[key].phase {
            crate::session::Phase::Active { auth: old } => Ok(std::mem::replace(old, auth)),
            crate::session::Phase::Authenticating { .. } => Err(HubError::NotAuthenticated(id)),
        }
    }

    /// Sends an already encoded text frame to one session; it must be valid JSON.
    /// For replies the adapter builds itself (for example sync responses).
    /// Returns whether it was queued, as [`send`](Hub::send).
    pub fn send_raw(&mut self, id: SessionId, frame: Bytes) -> Result<bool, HubError> {
        let key = self.key(id)?;
        envelope::validate_json(&frame).map_err(HubError::InvalidJson)?;
        Ok(self.enqueue(key, OutFrame::Text(frame)))
    }

    /// Closes a session with `code` and `reason` (cut to 123 bytes). Frames queued
    /// before are still written first.
    pub fn close(&mut self, id: SessionId, code: u16, reason: &str) -> Result<(), HubError> {
        let key = self.key(id)?;
        if !is_valid_code(code) {
            return Err(HubError::InvalidCloseCode(code));
        }
        self.close_key(
            key,
            CloseReason::Server {
                code,
                reason: super::delivery::truncate_reason(reason),
            },
        );
        Ok(())
    }

    /// Closes every session with 1001 (going away). Sessions opened later are
    /// closed at once the same way. Topic histories are dropped (nobody can
    /// recover from a hub that serves no one), so no timer is left.
    pub fn shutdown(&mut self, now: Instant) {
        let _ = now;
        self.shut_down = true;
        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close_key(key, CloseReason::Shutdown);
        }
        self.history = crate::history::History::default();
        self.remote = super::remote::Remote::default();
    }

    fn key(&self, id: SessionId) -> Result<usize, HubError> {
        self.by_id
            .get(&id)
            .copied()
            .ok_or(HubError::UnknownSession(id))
    }

    fn active_key(&self, id: SessionId) -> Result<usize, HubError> {
        let key = self.key(id)?;
        if self.sessions[key].auth().is_none() {
            return Err(HubError::NotAuthenticated(id));
        }
        Ok(key)
    }

    pub(super) fn check_topic(&self, topic: &str) -> Result<(), HubError> {
        if topic.is_empty() {
            return Err(HubError::InvalidTopic("empty"));
        }
        if topic.len() > self.config.limits.max_topic_len {
            return Err(HubError::InvalidTopic("longer than the limit"));
        }
        Ok(())
    }
}
