//! Per-topic history: which topics keep one ([`HistoryRule`], [`HistoryPolicy`]),
//! and the bounded rings of recent publications that let a client that names
//! its last position get what it missed.
//!
//! Every publication on a topic with history gets the next offset of that
//! topic (1, 2, 3, ...), dense within the topic's *epoch*. The epoch is a string
//! drawn from the hub's id generator when the topic's history starts; it
//! changes whenever the history is lost (a new hub). A position
//! `(epoch, offset)` therefore never names two different publications.
//!
//! Memory stays bounded by the rules' sizes and TTLs and by the number of
//! rings: a ring that ran empty and that nobody listens to is dropped, and
//! beyond [`Limits::max_history_topics`](crate::Limits::max_history_topics)
//! rings the one published to least recently that nobody listens to is
//! dropped. A dropped ring leaves its epoch and last offset behind (a few
//! dozen bytes, as many as there may be rings, oldest dropped first): when
//! the topic comes back its offsets go on in the same epoch, so a client
//! whose position is the last offset is told it missed nothing, and one
//! further behind that it missed what was dropped.
//!
//! A ring keeps at most `size` publications and, with a TTL, only those younger
//! than it. Time comes in as an argument: the hub never reads a clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::IdGenerator;
use crate::envelope;

/// How much history one topic keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most publications kept. `0` still numbers publications (so a client can
    /// tell it missed something) but keeps none.
    pub size: usize,
    /// Publications older than this are dropped; `None` keeps them until the
    /// size bound pushes them out.
    pub ttl: Option<Duration>,
}

impl HistoryLimits {
    /// `size` publications, each for at most `ttl`.
    pub const fn new(size: usize, ttl: Option<Duration>) -> Self {
        Self { size, ttl }
    }
}

/// A pattern of topics and the history they keep. The pattern is literal
/// except for `*`, which matches any run of characters (none included):
/// `chat:*` matches `chat:` and `chat:room:1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRule {
    /// The topic pattern.
    pub pattern: String,
    /// What matching topics keep.
    pub limits: HistoryLimits,
}

impl HistoryRule {
    /// A rule giving topics that match `pattern` these limits.
    pub fn new(pattern: impl Into<String>, limits: HistoryLimits) -> Self {
        Self {
            pattern: pattern.into(),
            limits,
        }
    }

    /// Whether `topic` matches the rule's pattern.
    pub fn matches(&self, topic: &str) -> bool {
        glob_matches(&self.pattern, topic)
    }
}

/// Decides which topics keep history, for an embedder whose choice is not a
/// list of patterns. Asked before the configured rules
/// ([`HubConfig::history`](crate::HubConfig::history)); `None` falls back to
/// them. It must be pure and cheap: it is asked on every publish of a topic
/// without a running history.
///
/// Any `Fn(&str) -> Option<HistoryLimits> + Send` closure is a policy.
pub trait HistoryPolicy: Send {
    /// The history `topic` keeps, if any.
    fn history(&self, topic: &str) -> Option<HistoryLimits>;
}

impl<F: Fn(&str) -> Option<HistoryLimits> + Send> HistoryPolicy for F {
    fn history(&self, topic: &str) -> Option<HistoryLimits> {
        self(topic)
    }
}

/// The first matching rule's limits.
pub(crate) fn rule_for(rules: &[HistoryRule], topic: &str) -> Option<HistoryLimits> {
    rules.iter().find(|r| r.matches(topic)).map(|r| r.limits)
}

/// `*` matches any run of characters; everything else is literal.
fn glob_matches(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// What a broker holds of one topic's history, the answer to
/// [`Event::ReadHistory`](crate::Event::ReadHistory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryRead {
    /// The topic's epoch (empty: the broker holds no history for it).
    pub epoch: String,
    /// The offset of its latest publication (0: none).
    pub last: u64,
    /// `(offset, raw JSON data)` of the publications after the asked offset
    /// up to `last`, oldest first, as far as the broker still holds them.
    pub entries: Vec<(u64, Bytes)>,
}

/// A position a client names: the epoch and the last offset it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Since {
    pub(crate) epoch: String,
    pub(crate) offset: u64,
}

/// One kept publication: its offset, when it was published (`None` when the
/// hub had not seen an instant yet; such an entry leaves only by size), and
/// the frame subscribers received, offset included, shared with the replay.
struct Entry {
    offset: u64,
    at: Option<Instant>,
    frame: Bytes,
}

/// One topic's history.
struct Ring {
    epoch: Arc<str>,
    limits: HistoryLimits,
    /// When it was last started or published to, in [`History::tick`]s.
    touched: u64,
    /// The offset of the latest publication (0: none yet).
    last: u64,
    entries: VecDeque<Entry>,
}

impl Ring {
    fn expires(&self, entry: &Entry) -> Option<Instant> {
        let ttl = self.limits.ttl?;
        entry.at?.checked_add(ttl.max(Duration::from_nanos(1)))
    }
}

/// What the hub holds in history, for its metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) topics: usize,
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
}

/// Every topic's ring, plus the deadlines at which their oldest entries
/// expire.
#[derive(Default)]
pub(crate) struct History {
    rings: BTreeMap<Arc<str>, Ring>,
    /// `(deadline, topic)`: at most one live entry per ring with a TTL and at
    /// least one entry, never later than its oldest entry's expiry. Stale
    /// entries (a ring trimmed or forgotten since) fire harmlessly.
    expiry: BTreeSet<(Instant, Arc<str>)>,
    /// Every ring's topic by the tick it was last touched, least recently
    /// published first (ticks are unique).
    recency: BTreeMap<u64, Arc<str>>,
    /// Counts starts and publications: the order of `recency`.
    tick: u64,
    /// What dropped rings left behind, for the topics' return.
    dropped: Dropped,
    entries: usize,
    bytes: usize,
}

/// The position a dropped ring reached: `(epoch, last offset)` by topic,
/// at most as many as there may be rings, the oldest forgotten first.
#[derive(Default)]
struct Dropped {
    by_topic: BTreeMap<Arc<str>, (Arc<str>, u64, u64)>,
    /// Topics by the order they were dropped in, oldest first.
    order: BTreeMap<u64, Arc<str>>,
    next: u64,
}

impl Dropped {
    fn keep(&mut self, topic: Arc<str>, epoch: Arc<str>, last: u64, cap: usize) {
        let n = self.next;
        self.next += 1;
        if let Some((_, _, old)) = self.by_topic.insert(topic.clone(), (epoch, last, n)) {
            self.order.remove(&old);
        }
        self.order.insert(n, topic);
        while self.by_topic.len() > cap.max(1) {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.by_topic.remove(&oldest);
        }
    }

    fn take(&mut self, topic: &str) -> Option<(Arc<str>, u64)> {
        let (epoch, last, n) = self.by_topic.remove(topic)?;
        self.order.remove(&n);
        Some((epoch, last))
    }
}

impl History {
    /// The topic's epoch and latest offset, if it has a history running.
    pub(crate) fn position(&self, topic: &str) -> Option<(&str, u64)> {
        self.rings.get(topic).map(|r| (&*r.epoch, r.last))
    }

    /// Whether the topic has a history running.
    pub(crate) fn contains(&self, topic: &str) -> bool {
        self.rings.contains_key(topic)
    }

    /// Starts the topic's history if it has none: where it was dropped, if
    /// its position is still remembered, or at 0 in a fresh epoch.
    pub(crate) fn start(&mut self, topic: &str, limits: HistoryLimits, ids: &mut dyn IdGenerator) {
        if self.rings.contains_key(topic) {
            return;
        }
        let (epoch, last) = match self.dropped.take(topic) {
            Some(kept) => kept,
            None => (Arc::from(format!("{:016x}", ids.next_id())), 0),
        };
        let name: Arc<str> = Arc::from(topic);
        self.tick += 1;
        self.recency.insert(self.tick, name.clone());
        self.rings.insert(
            name,
            Ring {
                epoch,
                limits,
                touched: self.tick,
                last,
                entries: VecDeque::new(),
            },
        );
    }

    /// How many rings are running.
    pub(crate) fn topics(&self) -> usize {
        self.rings.len()
    }

    /// Up to `n` topics, least recently published first: the candidates
    /// for [`forget`](History::forget) when there are too many rings.
    pub(crate) fn least_recent(&self, n: usize) -> Vec<Arc<str>> {
        self.recency.values().take(n).cloned().collect()
    }

    /// Numbers and keeps one publication (the topic's history must be
    /// started) and returns the frame to send: `{"topic","data","offset"}`.
    pub(crate) fn append(&mut self, now: Option<Instant>, topic: &str, data: &[u8]) -> Bytes {
        let Some(ring) = self.rings.get_mut(topic) else {
            // Unreachable by the hub's call order; an un-numbered frame is
            // the harmless answer.
            return envelope::encode(topic, data);
        };
        ring.last += 1;
        self.tick += 1;
        if let Some(name) = self.recency.remove(&ring.touched) {
            self.recency.insert(self.tick, name);
        }
        ring.touched = self.tick;
        let frame = envelope::encode_with_offset(topic, data, ring.last);
        if ring.limits.size == 0 {
            return frame;
        }
        let was_empty = ring.entries.is_empty();
        ring.entries.push_back(Entry {
            offset: ring.last,
            at: now,
            frame: frame.clone(),
        });
        self.entries += 1;
        self.bytes += frame.len();
        while ring.entries.len() > ring.limits.size {
            if let Some(old) = ring.entries.pop_front() {
                self.entries -= 1;
                self.bytes -= old.frame.len();
            }
        }
        let deadline = ring.entries.front().and_then(|e| ring.expires(e));
        if was_empty
            && let Some(at) = deadline
            && let Some((name, _)) = self.rings.get_key_value(topic)
        {
            self.expiry.insert((at, name.clone()));
        }
        frame
    }

    /// Drops the topic's entries that expired at `now`. Returns whether the
    /// ring is now empty.
    pub(crate) fn expire(&mut self, now: Instant, topic: &str) -> bool {
        let Some(ring) = self.rings.get_mut(topic) else {
            return true;
        };
        while let Some(front) = ring.entries.front() {
            if ring.expires(front).is_some_and(|at| at <= now) {
                self.entries -= 1;
                self.bytes -= front.frame.len();
                ring.entries.pop_front();
            } else {
                break;
            }
        }
        ring.entries.is_empty()
    }

    /// Whether the topic's ring holds no publication (or it has no history).
    pub(crate) fn is_empty(&self, topic: &str) -> bool {
        self.rings.get(topic).is_none_or(|r| r.entries.is_empty())
    }

    /// Drops the topic's ring and what it holds, remembering only its
    /// position (for at most `remember` dropped rings): when the topic comes
    /// back, its offsets go on from there in the same epoch.
    pub(crate) fn forget(&mut self, topic: &str, remember: usize) {
        if let Some((name, ring)) = self.rings.remove_entry(topic) {
            self.entries -= ring.entries.len();
            self.bytes -= ring.entries.iter().map(|e| e.frame.len()).sum::<usize>();
            self.recency.remove(&ring.touched);
            self.dropped.keep(name, ring.epoch, ring.last, remember);
        }
    }

    /// The frames published after `since`, oldest first, when the ring still
    /// holds all of them (possibly none); `None` when the position is gone:
    /// another epoch, an offset the topic never reached, or entries trimmed or
    /// expired. Expired entries must have been dropped first ([`expire`]).
    ///
    /// [`expire`]: History::expire
    pub(crate) fn after(&self, topic: &str, since: &Since) -> Option<Vec<Bytes>> {
        let ring = self.rings.get(topic)?;
        if *ring.epoch != *since.epoch || since.offset > ring.last {
            return None;
        }
        if since.offset == ring.last {
            return Some(Vec::new());
        }
        let first = ring.entries.front()?.offset;
        if first > since.offset + 1 {
            return None;
        }
        Some(
            ring.entries
                .iter()
                .filter(|e| e.offset > since.offset)
                .map(|e| e.frame.clone())
                .collect(),
        )
    }

    /// The earliest instant at which an entry may expire.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// Drops every entry expired at `now`. Returns the topics whose ring ran
    /// empty, for the hub to forget those nobody listens to.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<Arc<str>> {
        let mut emptied = Vec::new();
        while let Some((at, _)) = self.expiry.first() {
            if *at > now {
                break;
            }
            let Some((_, topic)) = self.expiry.pop_first() else {
                break;
            };
            if !self.rings.contains_key(&*topic) {
                continue;
            }
            if self.expire(now, &topic) {
                emptied.push(topic);
            } else if let Some(ring) = self.rings.get(&*topic)
                && let Some(at) = ring.entries.front().and_then(|e| ring.expires(e))
            {
                self.expiry.insert((at, topic));
            }
        }
        emptied
    }

    /// What is held, for the metrics.
    pub(crate) fn usage(&self) -> Usage {
        Usage {
            topics: self.rings.len(),
            entries: self.entries,
            bytes: self.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededIds;

    fn since(epoch: &str, offset: u64) -> Since {
        Since {
            epoch: epoch.to_owned(),
            offset,
        }
    }

    #[test]
    fn patterns_match_stars_anywhere() {
        let rule = |p: &str| HistoryRule::new(p, HistoryLimits::new(1, None));
        assert!(rule("chat:*").matches("chat:"));
        assert!(rule("chat:*").matches("chat:room:1"));
        assert!(!rule("chat:*").matches("news"));
        assert!(rule("*").matches(""));
        assert!(rule("a*b*c").matches("abc"));
        assert!(rule("a*b*c").matches("axxbyyc"));
        assert!(!rule("a*b*c").matches("axxbyy"));
        assert!(!rule("a*aa").matches("aa"));
        assert!(rule("exact").matches("exact"));
        assert!(!rule("exact").matches("exact2"));
    }

    #[test]
    fn offsets_are_dense_and_the_ring_keeps_the_newest() {
        let mut h = History::default();
        let mut ids = SeededIds::new(1);
        h.start("t", HistoryLimits::new(2, None), &mut ids);
        let f1 = h.append(None, "t", b"1");
        assert_eq!(&f1[..], br#"{"topic":"t","data":1,"offset":1}"#);
        h.append(None, "t", b"2");
        let f3 = h.append(None, "t", b"3");
        let (epoch, last) = h.position("t").unwrap();
        let epoch = epoch.to_owned();
        assert_eq!(last, 3);
        assert_eq!(h.usage().entries, 2);
        assert_eq!(h.after("t", &since(&epoch, 2)), Some(vec![f3.clone()]));
        assert_eq!(h.after("t", &since(&epoch, 3)), Some(vec![]));
        // Offset 2 is the oldest kept: a client at 0 or 1 missed a trimmed one.
        assert_eq!(h.after("t", &since(&epoch, 1)).map(|v| v.len()), Some(2));
        assert_eq!(h.after("t", &since(&epoch, 0)), None);
        assert_eq!(h.after("t", &since(&epoch, 4)), None);
        assert_eq!(h.after("t", &since("other", 2)), None);
        h.forget("t", 10);
        assert_eq!(h.usage(), Usage::default());
        // Back again: the same epoch, offsets going on, nothing to replay.
        h.start("t", HistoryLimits::new(2, None), &mut ids);
        assert_eq!(h.position("t"), Some((epoch.as_str(), 3)));
        assert_eq!(h.after("t", &since(&epoch, 3)), Some(vec![]));
        assert_eq!(h.after("t", &since(&epoch, 2)), None, "3 was dropped");
        let f4 = h.append(None, "t", b"4");
        assert_eq!(&f4[..], br#"{"topic":"t","data":4,"offset":4}"#);
    }

    #[test]
    fn rings_are_ordered_by_their_last_publication() {
        let mut h = History::default();
        let mut ids = SeededIds::new(1);
        for t in ["a", "b", "c"] {
            h.start(t, HistoryLimits::new(1, None), &mut ids);
        }
        h.append(None, "a", b"1");
        let order: Vec<String> = h.least_recent(3).iter().map(|t| t.to_string()).collect();
        assert_eq!(order, ["b", "c", "a"]);
        h.forget("b", 10);
        assert_eq!(h.topics(), 2);
        let order: Vec<String> = h.least_recent(3).iter().map(|t| t.to_string()).collect();
        assert_eq!(order, ["c", "a"]);
    }

    #[test]
    fn only_so_many_dropped_positions_are_remembered_oldest_first() {
        let mut h = History::default();
        let mut ids = SeededIds::new(1);
        let mut epochs = Vec::new();
        for t in ["a", "b", "c"] {
            h.start(t, HistoryLimits::new(1, None), &mut ids);
            h.append(None, t, b"1");
            epochs.push(h.position(t).unwrap().0.to_owned());
            h.forget(t, 2);
        }
        // "a" was dropped first and fell out: it starts over in a new epoch.
        h.start("a", HistoryLimits::new(1, None), &mut ids);
        let (epoch, last) = h.position("a").unwrap();
        assert_ne!(epoch, epochs[0]);
        assert_eq!(last, 0);
        h.start("c", HistoryLimits::new(1, None), &mut ids);
        assert_eq!(h.position("c"), Some((epochs[2].as_str(), 1)));
    }
}
