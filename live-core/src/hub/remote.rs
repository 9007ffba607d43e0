//! History kept by a broker ([`HubConfig::broker_history`](crate::HubConfig::broker_history)):
//! many nodes serve one topic, so no node can number its publications. A
//! publication on such a topic leaves as [`Event::Append`]; the broker numbers
//! it and every node with subscribers gets it back through
//! [`Hub::deliver_numbered`]. A subscribe that names a position (or asks for
//! it) is subscribed at once, so the broker starts delivering the topic, and
//! then asks for a read ([`Event::ReadHistory`]); what the topic publishes
//! meanwhile is held for that session. The answer
//! ([`Hub::handle_history_read`]) sends the `subscribed` reply, the
//! publications after the position, then the held ones the read did not
//! already hold (by offset: a floor), so the session gets each publication
//! once and in order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::Hub;
use super::recovery::encode_subscribed;
use crate::authorize::sync_scope;
use crate::envelope;
use crate::history::Since;
use crate::{CloseReason, Event, HistoryLimits, HistoryRead, HubError, OutFrame};

/// A subscribe waiting for the broker's read.
struct Waiting {
    key: usize,
    topic: Arc<str>,
    since: Option<Since>,
    /// Whether the session was not subscribed before this subscribe.
    fresh: bool,
    /// Publications of the topic that arrived meanwhile: their offset (`None`
    /// for one the broker could not number) and frame.
    held: Vec<(Option<u64>, Bytes)>,
}

/// The hub's side of broker-kept history.
#[derive(Default)]
pub(super) struct Remote {
    /// The latest position seen per topic with subscribers: epoch, offset.
    positions: BTreeMap<Arc<str>, (Arc<str>, u64)>,
    /// Reads asked and not answered, by request.
    waiting: BTreeMap<u64, Waiting>,
    /// (topic, slab key) -> its waiting request.
    by_session: BTreeMap<(Arc<str>, usize), u64>,
    /// (topic, slab key) -> (epoch, offset): a session answered from a read
    /// that already held the publications up to `offset`; their live copies
    /// may still be on their way (the read and the delivery travel apart) and
    /// are not sent to it again. Dropped at the first later publication.
    floors: BTreeMap<(Arc<str>, usize), (Arc<str>, u64)>,
    next_request: u64,
}

impl Remote {
    /// The waiting keys of `topic`.
    fn holding(&self, topic: &str) -> Vec<(usize, u64)> {
        if self.by_session.is_empty() {
            return Vec::new();
        }
        let name: Arc<str> = Arc::from(topic);
        self.by_session
            .range((name.clone(), 0)..=(name, usize::MAX))
            .map(|((_, key), request)| (*key, *request))
            .collect()
    }

    /// The sessions of `topic` that already have the publication at
    /// `(epoch, offset)`; floors it passes are dropped.
    fn floored(&mut self, topic: &str, epoch: &str, offset: u64) -> Vec<usize> {
        if self.floors.is_empty() {
            return Vec::new();
        }
        let name: Arc<str> = Arc::from(topic);
        let mut have = Vec::new();
        let mut passed = Vec::new();
        for ((_, key), (e, floor)) in self
            .floors
            .range((name.clone(), 0)..=(name.clone(), usize::MAX))
        {
            if **e == *epoch && offset <= *floor {
                have.push(*key);
            } else {
                passed.push(*key);
            }
        }
        for key in passed {
            self.floors.remove(&(name.clone(), key));
        }
        have
    }

    /// Records a position seen: a new epoch replaces the old one, a later
    /// offset of the same epoch moves it forward.
    fn saw(&mut self, topic: &str, epoch: &str, offset: u64) {
        match self.positions.get_mut(topic) {
            Some((e, o)) if **e == *epoch => *o = (*o).max(offset),
            Some(p) => *p = (Arc::from(epoch), offset),
            None => {
                self.positions
                    .insert(Arc::from(topic), (Arc::from(epoch), offset));
            }
        }
    }

    /// The latest position seen of `topic`.
    pub(super) fn position(&self, topic: &str) -> Option<(&str, u64)> {
        self.positions.get(topic).map(|(e, o)| (&**e, *o))
    }

    /// The session at `key` left `topic`: its read, if any, is forgotten.
    pub(super) fn left(&mut self, topic: &str, key: usize, topic_empty: bool) {
        if topic_empty {
            self.positions.remove(topic);
        }
        if !self.floors.is_empty() {
            self.floors.remove(&(Arc::from(topic), key));
        }
        if self.by_session.is_empty() {
            return;
        }
        if let Some(request) = self.by_session.remove(&(Arc::from(topic), key)) {
            self.waiting.remove(&request);
        }
    }

    /// Subscribes waiting for a read.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

impl<A> Hub<A> {
    /// The history limits of `topic` when the broker keeps its history
    /// (with [`HubConfig::broker_history`](crate::HubConfig::broker_history)):
    /// its publications go out as [`Event::Append`] instead of being
    /// delivered at once. `sync:` topics never qualify.
    pub fn numbered_by_broker(&self, topic: &str) -> Option<HistoryLimits> {
        if !self.config.broker_history || sync_scope(topic).is_some() {
            return None;
        }
        self.history_limits(topic)
    }

    /// Hands a publication to the broker when it keeps the topic's history.
    /// Returns whether it did.
    pub(super) fn append_to_broker(&mut self, topic: &str, data: &[u8]) -> bool {
        let Some(limits) = self.numbered_by_broker(topic) else {
            return false;
        };
        self.events.push_back(Event::Append {
            topic: topic.to_owned(),
            data: Bytes::copy_from_slice(data),
            limits,
        });
        true
    }

    /// A publication the broker numbered (`offset` within `epoch`): every
    /// local subscriber of `topic` gets `{"topic","data","offset"}`, except
    /// sessions waiting for a read, which get it after their replay unless
    /// the replay held it. Returns how many sessions it was queued for.
    pub fn deliver_numbered(
        &mut self,
        now: Instant,
        topic: &str,
        epoch: &str,
        offset: u64,
        data: &[u8],
    ) -> Result<usize, HubError> {
        self.clock = Some(now);
        self.check_topic(topic)?;
        let data = envelope::validate_json(data).map_err(HubError::InvalidJson)?;
        if self.topics.contains_key(topic) {
            self.remote.saw(topic, epoch, offset);
        }
        let frame = envelope::encode_with_offset(topic, data, offset);
        let skip = self.remote.floored(topic, epoch, offset);
        Ok(self.fan_out_holding(topic, Some(offset), frame, skip))
    }

    /// A publication the broker could not take (it is unreachable): delivered
    /// to this node's subscribers of `topic` without an offset. Returns how
    /// many sessions it was queued for.
    pub fn deliver_unnumbered(
        &mut self,
        now: Instant,
        topic: &str,
        data: &[u8],
    ) -> Result<usize, HubError> {
        self.clock = Some(now);
        self.check_topic(topic)?;
        let data = envelope::validate_json(data).map_err(HubError::InvalidJson)?;
        self.metrics.history_unnumbered += 1;
        let frame = envelope::encode(topic, data);
        Ok(self.fan_out_holding(topic, None, frame, Vec::new()))
    }

    /// Fans `frame` out to the topic's subscribers, holding it for those
    /// waiting for a read. A session holding more than the history's size
    /// and its queue's is closed as a slow consumer. Sessions in `skip` have it already.
    fn fan_out_holding(
        &mut self,
        topic: &str,
        offset: Option<u64>,
        frame: Bytes,
        mut skip: Vec<usize>,
    ) -> usize {
        let holding = self.remote.holding(topic);
        if holding.is_empty() {
            return self.fan_out_skipping(topic, frame, &skip);
        }
        // A read may take a while when many clients resume at once: what
        // it will return (at most the history's size) plus a send queue of
        // live frames may wait. The frames are shared, so each costs a slot.
        let max = self.config.limits.max_queued_messages
            + self.numbered_by_broker(topic).map_or(0, |l| l.size);
        let mut overflowed = Vec::new();
        for &(key, request) in &holding {
            if let Some(w) = self.remote.waiting.get_mut(&request) {
                if w.held.len() >= max {
                    overflowed.push(key);
                } else {
                    w.held.push((offset, frame.clone()));
                }
            }
        }
        skip.extend(holding.iter().map(|&(key, _)| key));
        let delivered = self.fan_out_skipping(topic, frame, &skip);
        for key in overflowed {
            self.close_key(key, CloseReason::SlowConsumer);
        }
        delivered
    }

    /// The session at `key`, subscribed to `topic`, asked for its position:
    /// asks the broker for a read and holds the topic's publications for it
    /// until the answer.
    pub(super) fn ask_broker_history(
        &mut self,
        key: usize,
        topic: &str,
        since: Option<Since>,
        fresh: bool,
        limits: HistoryLimits,
    ) {
        let Some((name, _)) = self.topics.get_key_value(topic) else {
            return;
        };
        let name = name.clone();
        self.remote.next_request += 1;
        let request = self.remote.next_request;
        // A second ask while the first waits replaces it; what was held
        // stays held.
        let held = match self.remote.by_session.insert((name.clone(), key), request) {
            Some(old) => self
                .remote
                .waiting
                .remove(&old)
                .map(|w| w.held)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let after = if fresh {
            since.as_ref().map(|s| s.offset)
        } else {
            None
        };
        self.remote.waiting.insert(
            request,
            Waiting {
                key,
                topic: name,
                since,
                fresh,
                held,
            },
        );
        self.events.push_back(Event::ReadHistory {
            request,
            topic: topic.to_owned(),
            after,
            limits,
        });
    }

    /// The broker's answer to [`Event::ReadHistory`] `request`: `None` when
    /// it could not be read. The session gets the `subscribed` reply
    /// (`recovered` when the read holds every publication after its
    /// position), what it missed, then what was held for it past the read.
    /// An unknown request (its session left the topic) is ignored.
    pub fn handle_history_read(&mut self, now: Instant, request: u64, read: Option<HistoryRead>) {
        self.clock = Some(now);
        let Some(w) = self.remote.waiting.remove(&request) else {
            return;
        };
        self.remote.by_session.remove(&(w.topic.clone(), w.key));
        self.remote.floors.remove(&(w.topic.clone(), w.key));
        if !self
            .sessions
            .get(w.key)
            .is_some_and(|s| s.topics.contains(&*w.topic))
        {
            return;
        }
        let topic = &*w.topic;
        let mut replay = Vec::new();
        let (epoch, last, recovered) = match &read {
            Some(r) => {
                if !r.epoch.is_empty() {
                    self.remote.saw(topic, &r.epoch, r.last);
                }
                let recovered = match &w.since {
                    Some(s) if !r.epoch.is_empty() && s.epoch == r.epoch && s.offset <= r.last => {
                        if w.fresh {
                            replay_after(topic, r, s.offset, &mut replay)
                        } else {
                            s.offset == r.last
                        }
                    }
                    _ => false,
                };
                (r.epoch.as_str(), r.last, recovered)
            }
            None => ("", 0, false),
        };
        if w.since.is_some() {
            if recovered {
                self.metrics.recoveries += 1;
            } else {
                self.metrics.recoveries_failed += 1;
                replay.clear();
            }
        }
        let reply = encode_subscribed(topic, epoch, last, recovered);
        if !self.enqueue(w.key, OutFrame::Text(reply)) {
            return;
        }
        // What the read held is not sent twice: the floor is its last
        // offset (when it failed, everything held goes).
        let floor = read.as_ref().map_or(0, |r| r.last);
        if let Some(r) = &read
            && !r.epoch.is_empty()
        {
            self.remote.floors.insert(
                (w.topic.clone(), w.key),
                (Arc::from(r.epoch.as_str()), r.last),
            );
        }
        let held = w
            .held
            .into_iter()
            .filter(|(offset, _)| offset.is_none_or(|o| o > floor))
            .map(|(_, frame)| frame);
        self.enqueue_replay(w.key, replay.into_iter().chain(held));
    }

    /// Subscribes waiting for the broker's read.
    pub fn history_reads_waiting(&self) -> usize {
        self.remote.waiting()
    }
}

/// Fills `out` with the frames of the publications after `after` and
/// returns whether the read holds every one of them, dense up to its last
/// offset, each valid JSON.
fn replay_after(topic: &str, read: &HistoryRead, after: u64, out: &mut Vec<Bytes>) -> bool {
    let mut expected = after + 1;
    for (offset, data) in &read.entries {
        if *offset <= after {
            continue;
        }
        if *offset != expected || *offset > read.last {
            return false;
        }
        let Ok(data) = envelope::validate_json(data) else {
            return false;
        };
        out.push(envelope::encode_with_offset(topic, data, *offset));
        expected += 1;
    }
    expected == read.last + 1
}
