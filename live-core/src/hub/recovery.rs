//! History on the hub's side: numbering publications of topics with history,
//! and answering a subscribe that names a position (`since`) or asks for one
//! (`"history":true`) with the `subscribed` reply and the replay.
//!
//! The reply, the replay and later live publications are queued in that
//! order within one input, so a recovering client gets every publication
//! after its position exactly once: nothing can be published between the
//! replay and the subscription taking effect.

use std::time::Instant;

use bytes::Bytes;

use super::Hub;
use crate::envelope::{self, write_json_string};
use crate::history::rule_for;
use crate::options::SubscribeOptions;
use crate::{HistoryLimits, OutFrame};

/// The topic of the reply to a subscribe that names `since` or `history`.
const SUBSCRIBED_TOPIC: &str = "subscribed";

impl<A> Hub<A> {
    /// Whether no topic can have history: no rule and no policy. The fast
    /// path of every publish.
    pub(super) fn history_off(&self) -> bool {
        self.config.history.is_empty() && self.history_policy.is_none()
    }

    /// The history `topic` keeps, if any: the policy first, then the rules.
    pub(super) fn history_limits(&self, topic: &str) -> Option<HistoryLimits> {
        if self.history_off() {
            return None;
        }
        self.history_policy
            .as_ref()
            .and_then(|p| p.history(topic))
            .or_else(|| rule_for(&self.config.history, topic))
    }

    /// Starts the topic's history if it keeps one. Returns whether it has one.
    fn start_history(&mut self, topic: &str) -> bool {
        if self.history.contains(topic) {
            return true;
        }
        match self.history_limits(topic) {
            Some(limits) => {
                self.history.start(topic, limits, &mut *self.ids);
                true
            }
            None => false,
        }
    }

    /// The frame of one publication, encoded once for every subscriber: on a
    /// topic with history it is numbered and kept, and carries its offset.
    pub(super) fn encode_publication(
        &mut self,
        now: Option<Instant>,
        topic: &str,
        data: &[u8],
    ) -> Bytes {
        if self.history_off() {
            // No rule and no policy: no topic can have a history running.
            return envelope::encode(topic, data);
        }
        if self.start_history(topic) {
            let frame = self.history.append(now, topic, data);
            self.bound_history_topics();
            frame
        } else {
            envelope::encode(topic, data)
        }
    }

    /// Beyond the most topics with history, drops the rings published to
    /// least recently that nobody is subscribed to (a ring someone listens
    /// to stays: those are bounded by the subscription limits).
    fn bound_history_topics(&mut self) {
        let max = self.config.limits.max_history_topics;
        let mut over = self.history.topics().saturating_sub(max);
        if over == 0 {
            return;
        }
        // Look a little past the excess, for rings with subscribers.
        for topic in self.history.least_recent(over + 64) {
            if over == 0 {
                break;
            }
            if !self.topics.contains_key(&*topic) {
                self.history.forget(&topic, max);
                self.metrics.history_topics_dropped += 1;
                over -= 1;
            }
        }
    }

    /// After the session at `key` is subscribed to `topic`: records it as a
    /// watcher when it asked for presence, then sends the `subscribed` reply
    /// and, when its position is still held, what it missed. `fresh` is false
    /// when it was already subscribed: it has had every live publication
    /// since, so only its exact current position counts as recovered.
    pub(super) fn answer_subscribe(
        &mut self,
        now: Instant,
        key: usize,
        topic: &str,
        options: &SubscribeOptions,
        fresh: bool,
    ) {
        if options.presence
            && let Some((name, _)) = self.topics.get_key_value(topic)
        {
            self.watchers.add(name.clone(), key);
        }
        if !options.wants_reply() {
            return;
        }
        if let Some(limits) = self.numbered_by_broker(topic) {
            self.ask_broker_history(key, topic, options.since.clone(), fresh, limits);
            return;
        }
        if self.start_history(topic) {
            self.history.expire(now, topic);
        }
        let replay = match &options.since {
            None => None,
            Some(since) if fresh => self.history.after(topic, since),
            Some(since) => self
                .history
                .position(topic)
                .filter(|&(e, o)| *e == *since.epoch && o == since.offset)
                .map(|_| Vec::new()),
        };
        if options.since.is_some() {
            if replay.is_some() {
                self.metrics.recoveries += 1;
            } else {
                self.metrics.recoveries_failed += 1;
            }
        }
        let (epoch, offset) = self.history.position(topic).unwrap_or(("", 0));
        let reply = encode_subscribed(topic, epoch, offset, replay.is_some());
        self.bound_history_topics();
        if !self.enqueue(key, OutFrame::Text(reply)) {
            return;
        }
        self.enqueue_replay(key, replay.into_iter().flatten());
    }

    /// Drops expired history entries, and forgets the topics left with none
    /// and no subscriber (their next publication starts a new epoch).
    pub(super) fn expire_history(&mut self, now: Instant) {
        if self.history.next_expiry().is_none_or(|at| at > now) {
            return;
        }
        for topic in self.history.handle_timeout(now) {
            if !self.topics.contains_key(&*topic) {
                self.history
                    .forget(&topic, self.config.limits.max_history_topics);
            }
        }
    }

    /// A topic lost its last subscriber: an empty history is dropped (its
    /// position is remembered).
    pub(super) fn release_history(&mut self, topic: &str) {
        if !self.history_off() && self.history.contains(topic) && self.history.is_empty(topic) {
            self.history
                .forget(topic, self.config.limits.max_history_topics);
        }
    }
}

/// `{"topic":"subscribed","data":{"topic":T,"epoch":E,"offset":N,"recovered":b}}`.
/// A topic without history answers epoch `""` and offset 0.
pub(super) fn encode_subscribed(topic: &str, epoch: &str, offset: u64, recovered: bool) -> Bytes {
    let mut data = Vec::with_capacity(topic.len() + epoch.len() + 64);
    data.extend_from_slice(b"{\"topic\":");
    write_json_string(&mut data, topic);
    data.extend_from_slice(b",\"epoch\":");
    write_json_string(&mut data, epoch);
    data.extend_from_slice(b",\"offset\":");
    data.extend_from_slice(offset.to_string().as_bytes());
    data.extend_from_slice(if recovered {
        b",\"recovered\":true}"
    } else {
        b",\"recovered\":false}"
    });
    envelope::encode(SUBSCRIBED_TOPIC, &data)
}
