//! The reference model of the hub: an operation list drives the hub and a small
//! reference model side by side; after every step what each session received must
//! match the model exactly.
//!
//! The reference model is written for clarity, not speed: plain vectors and
//! sets, one function per input. It mirrors the documented rules (envelope
//! encoding, holding messages while blocked, queue bounds, timers), not the hub's
//! data structures. Asynchronous authorization questions are answered by inputs
//! only (their timeout is off here): a timed-out question releases held messages
//! into other sessions' queues in an order that depends on timer bookkeeping, and
//! that rule is covered by the transcript tests instead.

//!
//! History is modelled on topic `b` (size [`HISTORY_SIZE`], TTL
//! [`HISTORY_TTL`]): offsets, epochs (the model draws them from its own copy of
//! the hub's seeded generator, so it predicts them exactly), trimming, expiry,
//! dropping an empty history nobody listens to (its position is kept and
//! its offsets go on in the same epoch when it comes back), and the
//! `subscribed` reply with its replay. Presence is modelled on every topic:
//! `join` and `leave` to the sessions that subscribed with `"presence":true`
//! (in slab key order, which the model mirrors, slow watchers closed after
//! the others were served), and the member list of a `presence` query.
//!
//! Shared by the property test (`tests/model.rs`, operations from proptest) and the
//! fuzz target (operations decoded from arbitrary bytes), so both check exactly
//! the same rules.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::{
    Action, AuthorizeTicket, Event, Frame, HistoryLimits, HistoryRule, Hub, HubConfig, IdGenerator,
    OutFrame, Rejection, SeededIds, SessionId,
};
use bytes::Bytes;

/// Fails the run with a message when the condition does not hold.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
    ($cond:expr) => {
        if !$cond {
            return Err(format!("assertion failed: {}", stringify!($cond)));
        }
    };
}

/// Fails the run with both values when they differ.
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($fmt:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{}: {:?} != {:?}", format!($($fmt)+), l, r));
        }
    }};
    ($left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{} != {}: {:?} != {:?}", stringify!($left), stringify!($right), l, r));
        }
    }};
}

/// The topics operations name by index; the last one needs authorization.
pub const TOPICS: [&str; 3] = ["a", "b", "sync:x"];
const MAX_MSGS: usize = 4;
const MAX_BYTES: usize = 150;
const MAX_TOPICS: usize = 2;
const MAX_HELD: usize = 3;
const PING: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(35);
const AUTH: Duration = Duration::from_secs(5);
/// The topic (index into [`TOPICS`]) that keeps history.
pub const HISTORY_TOPIC: usize = 1;
/// Publications its history keeps.
pub const HISTORY_SIZE: usize = 3;
/// How long its history keeps them.
pub const HISTORY_TTL: Duration = Duration::from_secs(20);
const SEED: u64 = 11;

/// One input to the hub (and the model). Session indexes wrap around every
/// session ever opened, so any index is valid once one session exists; topic
/// indexes are taken modulo [`TOPICS`].
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Op {
    Open {
        pre_authenticated: bool,
    },
    Auth {
        s: usize,
        ok: bool,
    },
    Subscribe {
        s: usize,
        t: usize,
    },
    /// A subscribe with a `since` (`epoch`: 0 the topic's current epoch, 1 a
    /// wrong one; `back`: how far before the latest offset, 7 meaning one
    /// past it) or `"history":true` alone.
    SubscribeSince {
        s: usize,
        t: usize,
        since: Option<(u8, u64)>,
        history: bool,
        presence: bool,
    },
    /// A presence query: `{"topic":"presence","data":{"topic":T}}`.
    Presence {
        s: usize,
        t: usize,
    },
    Unsubscribe {
        s: usize,
        t: usize,
    },
    Publish {
        s: usize,
        t: usize,
        size: usize,
    },
    ServerPublish {
        t: usize,
        size: usize,
    },
    ServerClose {
        s: usize,
    },
    Flush {
        s: usize,
        n: usize,
    },
    Ping {
        s: usize,
    },
    Pong {
        s: usize,
    },
    Garbage {
        s: usize,
    },
    PeerClose {
        s: usize,
    },
    TransportClosed {
        s: usize,
    },
    Answer {
        allow: bool,
    },
    Advance {
        ms: u64,
    },
}

impl Op {
    /// The same operation with its numbers brought into the model's ranges.
    fn normalised(&self) -> Op {
        let t = |t: &usize| t % TOPICS.len();
        let size = |n: &usize| n % 200;
        match self {
            Op::Subscribe { s, t: i } => Op::Subscribe { s: *s, t: t(i) },
            Op::SubscribeSince {
                s,
                t: i,
                since,
                history,
                presence,
            } => Op::SubscribeSince {
                s: *s,
                t: t(i),
                since: since.map(|(e, back)| (e % 2, back % 8)),
                history: *history,
                presence: *presence,
            },
            Op::Presence { s, t: i } => Op::Presence { s: *s, t: t(i) },
            Op::Unsubscribe { s, t: i } => Op::Unsubscribe { s: *s, t: t(i) },
            Op::Publish { s, t: i, size: n } => Op::Publish {
                s: *s,
                t: t(i),
                size: size(n),
            },
            Op::ServerPublish { t: i, size: n } => Op::ServerPublish {
                t: t(i),
                size: size(n),
            },
            Op::Advance { ms } => Op::Advance { ms: ms % 60_000 },
            other => other.clone(),
        }
    }
}

fn config() -> HubConfig {
    let mut c = HubConfig::default();
    c.limits.max_queued_messages = MAX_MSGS;
    c.limits.max_queued_bytes = MAX_BYTES;
    c.limits.max_topics_per_session = MAX_TOPICS;
    c.limits.max_pending_inbound = MAX_HELD;
    c.timers.ping_interval = Some(PING);
    c.timers.idle_timeout = Some(IDLE);
    c.timers.auth_timeout = Some(AUTH);
    c.timers.authorize_timeout = None;
    c.history = vec![HistoryRule::new(
        TOPICS[HISTORY_TOPIC],
        HistoryLimits::new(HISTORY_SIZE, Some(HISTORY_TTL)),
    )];
    c
}

/// A client message as the model sees it.
#[derive(Debug, Clone)]
enum Msg {
    Subscribe(usize),
    /// Topic and options as sent.
    SubscribeWith(usize, Opts),
    /// A presence query.
    Presence(usize),
    Unsubscribe(usize),
    Publish(usize, usize),
    Garbage,
}

impl Msg {
    fn wire(&self) -> String {
        match self {
            Msg::Subscribe(t) => format!(
                r#"{{"topic":"subscribe","data":{{"topic":"{}"}}}}"#,
                TOPICS[*t]
            ),
            Msg::SubscribeWith(t, o) => {
                let since = match &o.since {
                    Some((e, o)) => format!(r#","since":{{"epoch":"{e}","offset":{o}}}"#),
                    None => String::new(),
                };
                format!(
                    r#"{{"topic":"subscribe","data":{{"topic":"{}"{since},"history":{},"presence":{}}}}}"#,
                    TOPICS[*t], o.history, o.presence
                )
            }
            Msg::Presence(t) => format!(
                r#"{{"topic":"presence","data":{{"topic":"{}"}}}}"#,
                TOPICS[*t]
            ),
            Msg::Unsubscribe(t) => {
                format!(
                    r#"{{"topic":"unsubscribe","data":{{"topic":"{}"}}}}"#,
                    TOPICS[*t]
                )
            }
            Msg::Publish(t, size) => format!(
                r#"{{"topic":"publish","data":{{"topic":"{}","data":{}}}}}"#,
                TOPICS[*t],
                data(*size)
            ),
            Msg::Garbage => "{not json".to_owned(),
        }
    }
}

fn data(size: usize) -> String {
    format!("\"{}\"", "x".repeat(size))
}

fn envelope(topic: &str, data: &str) -> String {
    format!(r#"{{"topic":"{topic}","data":{data}}}"#)
}

fn error(code: &str, message: &str) -> String {
    envelope(
        "error",
        &format!(r#"{{"code":"{code}","message":"{message}"}}"#),
    )
}

/// What a session receives, as the model predicts and the hub renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Text(String),
    Ping,
    Pong,
    Close(u16),
}

impl Out {
    fn len(&self) -> usize {
        match self {
            Out::Text(s) => s.len(),
            _ => 0,
        }
    }
}

#[derive(Debug)]
struct MSession {
    id: SessionId,
    /// Its slot in the hub's slab: the order of fan-out, announcements and
    /// member lists.
    key: usize,
    /// Topics whose joins and leaves it hears.
    watching: BTreeSet<usize>,
    /// Frames behind a replay longer than the queue, and the backlog's limit.
    backlog: Option<(VecDeque<Out>, usize)>,
    open: bool,
    authenticating: Option<Instant>,
    topics: BTreeSet<usize>,
    queue: VecDeque<usize>,
    held: VecDeque<Msg>,
    pending: Option<(u64, usize)>,
    last_received: Instant,
    next_ping: Option<Instant>,
    received: Vec<Out>,
    close_code: Option<u16>,
}

/// A subscribe's options as sent.
#[derive(Debug, Clone, Default)]
struct Opts {
    since: Option<(String, u64)>,
    history: bool,
    presence: bool,
}

impl Opts {
    /// Whether the subscribe earns a `subscribed` reply.
    fn wants_reply(&self) -> bool {
        self.since.is_some() || self.history
    }

    /// Whether it asks nothing beyond the subscription.
    fn is_plain(&self) -> bool {
        !self.wants_reply() && !self.presence
    }
}

/// What an authorization question was asked for.
#[derive(Debug, Clone)]
enum Asked {
    Subscribe(Option<Opts>),
    Presence,
}

/// The history of [`HISTORY_TOPIC`]: epoch, latest offset, and the kept
/// publications `(offset, published at, frame)`.
#[derive(Debug)]
struct MHistory {
    epoch: String,
    last: u64,
    entries: VecDeque<(u64, Instant, String)>,
}

#[derive(Debug)]
struct Model {
    now: Instant,
    sessions: Vec<MSession>,
    /// Questions asked, in order: (question number, session index, topic
    /// index, what for).
    questions: VecDeque<(u64, usize, usize, Asked)>,
    next_question: u64,
    /// A copy of the hub's id generator: sessions and epochs draw from it in
    /// the same order.
    ids: SeededIds,
    history: Option<MHistory>,
    /// The position of a dropped history: `(epoch, last)`.
    dropped: Option<(String, u64)>,
    /// Vacated slab slots, the last vacated reused first (as `slab` does).
    free: Vec<usize>,
    /// Slab slots ever used.
    slots: usize,
}

impl Model {
    /// The session an op's index names: any session ever opened, closed ones
    /// included (inputs for them must be ignored).
    fn target(&self, s: usize) -> Option<(usize, SessionId)> {
        if self.sessions.is_empty() {
            return None;
        }
        let i = s % self.sessions.len();
        Some((i, self.sessions[i].id))
    }

    fn open(&mut self, id: SessionId, pre: bool) {
        let key = self.free.pop().unwrap_or_else(|| {
            self.slots += 1;
            self.slots - 1
        });
        self.sessions.push(MSession {
            id,
            key,
            watching: BTreeSet::new(),
            open: true,
            authenticating: (!pre).then(|| self.now + AUTH),
            topics: BTreeSet::new(),
            queue: VecDeque::new(),
            held: VecDeque::new(),
            pending: None,
            last_received: self.now,
            next_ping: pre.then(|| self.now + PING),
            received: Vec::new(),
            close_code: None,
            backlog: None,
        });
    }

    fn close(&mut self, i: usize, code: Option<u16>, reported: u16) {
        let s = &mut self.sessions[i];
        s.open = false;
        s.watching.clear();
        let topics = std::mem::take(&mut s.topics);
        s.held.clear();
        s.pending = None;
        s.queue.clear();
        s.backlog = None;
        s.close_code = Some(reported);
        if let Some(code) = code {
            s.received.push(Out::Close(code));
        }
        // Topic indexes are in name order, the order it leaves them in.
        for t in topics {
            self.announce("leave", t, i);
        }
        let key = self.sessions[i].key;
        self.free.push(key);
        self.settle();
    }

    /// Open sessions matching `pick`, in slab key order.
    fn in_key_order(&self, pick: impl Fn(&MSession) -> bool) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.sessions.len())
            .filter(|&j| self.sessions[j].open && pick(&self.sessions[j]))
            .collect();
        v.sort_by_key(|&j| self.sessions[j].key);
        v
    }

    /// Tells the watchers of `t` other than session `i` that it joined or
    /// left.
    fn announce(&mut self, kind: &str, t: usize, i: usize) {
        let targets = self.in_key_order(|s| s.watching.contains(&t));
        let targets: Vec<usize> = targets.into_iter().filter(|&j| j != i).collect();
        let frame = envelope(
            kind,
            &format!(
                r#"{{"topic":"{}","session":"{}","user":null}}"#,
                TOPICS[t], self.sessions[i].id
            ),
        );
        self.send_shared(&targets, &frame);
    }

    /// One frame for each of `targets`; those it does not fit are closed as
    /// slow after the others were served.
    fn send_shared(&mut self, targets: &[usize], frame: &str) {
        let mut overflowed = Vec::new();
        for &j in targets {
            if !self.sessions[j].open {
                continue;
            }
            if let Some((b, limit)) = &mut self.sessions[j].backlog {
                if b.len() >= *limit {
                    overflowed.push(j);
                } else {
                    b.push_back(Out::Text(frame.to_owned()));
                }
                continue;
            }
            if self.fits(j, frame.len()) {
                let s = &mut self.sessions[j];
                s.queue.push_back(frame.len());
                s.received.push(Out::Text(frame.to_owned()));
            } else {
                overflowed.push(j);
            }
        }
        for j in overflowed {
            if self.sessions[j].open {
                self.close(j, Some(4008), 4008);
            }
        }
    }

    fn fits(&self, i: usize, len: usize) -> bool {
        let s = &self.sessions[i];
        let bytes: usize = s.queue.iter().sum();
        s.queue.len() < MAX_MSGS && (s.queue.is_empty() || bytes + len <= MAX_BYTES)
    }

    /// An empty history nobody listens to is forgotten (its next publication
    /// starts a new epoch).
    fn settle(&mut self) {
        let listened = self
            .sessions
            .iter()
            .any(|s| s.open && s.topics.contains(&HISTORY_TOPIC));
        if !listened && self.history.as_ref().is_some_and(|h| h.entries.is_empty()) {
            self.dropped = self.history.take().map(|h| (h.epoch, h.last));
        }
    }

    /// Starts the history if it has none: where it was dropped, or in a
    /// fresh epoch.
    fn start_history(&mut self) -> &mut MHistory {
        let ids = &mut self.ids;
        let dropped = &mut self.dropped;
        self.history.get_or_insert_with(|| {
            let (epoch, last) = dropped
                .take()
                .unwrap_or_else(|| (format!("{:016x}", ids.next_id()), 0));
            MHistory {
                epoch,
                last,
                entries: VecDeque::new(),
            }
        })
    }

    /// Drops the publications whose TTL passed.
    fn expire(&mut self) {
        let now = self.now;
        if let Some(h) = &mut self.history {
            while h.entries.front().is_some_and(|e| e.1 + HISTORY_TTL <= now) {
                h.entries.pop_front();
            }
        }
    }

    fn enqueue(&mut self, i: usize, out: Out) {
        if let Some((b, limit)) = &mut self.sessions[i].backlog {
            if b.len() >= *limit {
                self.close(i, Some(4008), 4008);
            } else {
                b.push_back(out);
            }
            return;
        }
        if !self.fits(i, out.len()) {
            self.close(i, Some(4008), 4008);
            return;
        }
        let s = &mut self.sessions[i];
        s.queue.push_back(out.len());
        s.received.push(out);
    }

    fn fan_out(&mut self, t: usize, size: usize) {
        let frame = if t == HISTORY_TOPIC {
            let now = self.now;
            let h = self.start_history();
            h.last += 1;
            let frame = format!(
                r#"{{"topic":"{}","data":{},"offset":{}}}"#,
                TOPICS[t],
                data(size),
                h.last
            );
            h.entries.push_back((h.last, now, frame.clone()));
            if h.entries.len() > HISTORY_SIZE {
                h.entries.pop_front();
            }
            frame
        } else {
            envelope(TOPICS[t], &data(size))
        };
        let subs = self.in_key_order(|s| s.topics.contains(&t));
        self.send_shared(&subs, &frame);
    }

    fn arrive(&mut self, i: usize, msg: Msg) {
        let s = &mut self.sessions[i];
        if !s.open {
            return;
        }
        s.last_received = self.now;
        if s.authenticating.is_some() || s.pending.is_some() {
            if s.held.len() >= MAX_HELD {
                self.close(i, Some(1008), 1008);
            } else {
                s.held.push_back(msg);
            }
            return;
        }
        self.process(i, msg);
    }

    fn process(&mut self, i: usize, msg: Msg) {
        match msg {
            Msg::Garbage => self.enqueue(
                i,
                Out::Text(error("bad_json", "message is not a JSON object")),
            ),
            Msg::Subscribe(t) => self.subscribe(i, t, None),
            Msg::SubscribeWith(t, opts) => {
                let opts = (!opts.is_plain()).then_some(opts);
                self.subscribe(i, t, opts);
            }
            Msg::Presence(t) => {
                if self.sessions[i].topics.contains(&t) || !TOPICS[t].starts_with("sync:") {
                    self.answer_presence(i, t);
                } else {
                    self.ask(i, t, Asked::Presence);
                }
            }
            Msg::Unsubscribe(t) => {
                let s = &mut self.sessions[i];
                if s.topics.remove(&t) {
                    s.watching.remove(&t);
                    self.settle();
                    self.announce("leave", t, i);
                }
            }
            Msg::Publish(t, size) => {
                if TOPICS[t].starts_with("sync:") {
                    self.enqueue(
                        i,
                        Out::Text(error(
                            "forbidden",
                            &format!("clients may not publish on sync topic {}", TOPICS[t]),
                        )),
                    );
                } else {
                    self.fan_out(t, size);
                }
            }
        }
    }

    fn subscribe(&mut self, i: usize, t: usize, opts: Option<Opts>) {
        if self.sessions[i].topics.contains(&t) {
            // A subscriber asking for its position needs no permission.
            if opts.is_some() {
                self.apply_subscribe(i, t, opts);
            }
            return;
        }
        if TOPICS[t].starts_with("sync:") {
            self.ask(i, t, Asked::Subscribe(opts));
        } else {
            self.apply_subscribe(i, t, opts);
        }
    }

    /// Holds session `i` on a question to the application about `t`.
    fn ask(&mut self, i: usize, t: usize, what: Asked) {
        let q = self.next_question;
        self.next_question += 1;
        self.sessions[i].pending = Some((q, t));
        self.questions.push_back((q, i, t, what));
    }

    /// `{"topic":"presence","data":{"topic":T,"clients":[...]}}`: every
    /// subscriber of `t` in key order.
    fn answer_presence(&mut self, i: usize, t: usize) {
        let members: Vec<String> = self
            .in_key_order(|s| s.topics.contains(&t))
            .into_iter()
            .map(|j| format!(r#"{{"session":"{}","user":null}}"#, self.sessions[j].id))
            .collect();
        let frame = envelope(
            "presence",
            &format!(
                r#"{{"topic":"{}","clients":[{}]}}"#,
                TOPICS[t],
                members.join(",")
            ),
        );
        self.enqueue(i, Out::Text(frame));
    }

    fn apply_subscribe(&mut self, i: usize, t: usize, opts: Option<Opts>) {
        let fresh = !self.sessions[i].topics.contains(&t);
        if fresh && !self.join(i, t) {
            return;
        }
        let Some(Opts {
            since, presence, ..
        }) = opts.clone()
        else {
            return;
        };
        if !self.sessions[i].open {
            return;
        }
        if presence && self.sessions[i].topics.contains(&t) {
            self.sessions[i].watching.insert(t);
        }
        if !opts.as_ref().is_some_and(Opts::wants_reply) {
            return;
        }
        if t == HISTORY_TOPIC {
            self.start_history();
            self.expire();
        }
        let history = self.history.as_ref().filter(|_| t == HISTORY_TOPIC);
        let replay: Option<Vec<String>> = since.as_ref().and_then(|(e, o)| {
            let h = history?;
            if h.epoch != *e || *o > h.last {
                return None;
            }
            if !fresh || *o == h.last {
                return (*o == h.last).then(Vec::new);
            }
            let first = h.entries.front()?.0;
            (first <= o + 1).then(|| {
                h.entries
                    .iter()
                    .filter(|x| x.0 > *o)
                    .map(|x| x.2.clone())
                    .collect()
            })
        });
        let (epoch, offset) = history.map_or((String::new(), 0), |h| (h.epoch.clone(), h.last));
        let reply = envelope(
            "subscribed",
            &format!(
                r#"{{"topic":"{}","epoch":"{epoch}","offset":{offset},"recovered":{}}}"#,
                TOPICS[t],
                replay.is_some()
            ),
        );
        self.enqueue(i, Out::Text(reply));
        if self.sessions[i].open {
            self.enqueue_replay(i, replay.into_iter().flatten().map(Out::Text).collect());
        }
    }

    /// A replay: what fits goes to the queue, the rest (and everything after
    /// it) waits in the backlog, whose limit grows by what the replay put in.
    fn enqueue_replay(&mut self, i: usize, frames: VecDeque<Out>) {
        let mut frames = frames;
        while self.sessions[i].backlog.is_none() {
            let Some(front) = frames.front() else {
                return;
            };
            if !self.fits(i, front.len()) {
                break;
            }
            let out = frames.pop_front().expect("front exists");
            let s = &mut self.sessions[i];
            s.queue.push_back(out.len());
            s.received.push(out);
        }
        let s = &mut self.sessions[i];
        let (b, limit) = s.backlog.get_or_insert_with(|| (VecDeque::new(), MAX_MSGS));
        *limit += frames.len();
        b.extend(frames);
        if b.is_empty() && s.queue.len() * 2 <= MAX_MSGS {
            s.backlog = None;
        }
    }

    /// After a flush: backlog frames move to the queue while they fit.
    fn drain_backlog(&mut self, i: usize) {
        loop {
            let Some(len) = self.sessions[i]
                .backlog
                .as_ref()
                .and_then(|(b, _)| b.front().map(Out::len))
            else {
                // Empty: it ends once the queue is half full at most.
                if self.sessions[i].queue.len() * 2 <= MAX_MSGS {
                    self.sessions[i].backlog = None;
                }
                return;
            };
            if !self.fits(i, len) {
                return;
            }
            let s = &mut self.sessions[i];
            let Some((b, _)) = s.backlog.as_mut() else {
                return;
            };
            let out = b.pop_front().expect("front exists");
            s.queue.push_back(out.len());
            s.received.push(out);
        }
    }

    /// Adds the session to the topic under the topic limit. Returns whether
    /// it is subscribed.
    fn join(&mut self, i: usize, t: usize) -> bool {
        if self.sessions[i].topics.len() >= MAX_TOPICS {
            self.enqueue(
                i,
                Out::Text(error(
                    "too_many_topics",
                    &format!(
                        "too many topics for this session; not subscribed to {}",
                        TOPICS[t]
                    ),
                )),
            );
            return false;
        }
        self.sessions[i].topics.insert(t);
        self.announce("join", t, i);
        true
    }

    fn process_held(&mut self, i: usize) {
        loop {
            let s = &mut self.sessions[i];
            if !s.open || s.authenticating.is_some() || s.pending.is_some() {
                return;
            }
            let Some(msg) = s.held.pop_front() else {
                return;
            };
            self.process(i, msg);
        }
    }

    fn auth(&mut self, i: usize, ok: bool) {
        let s = &mut self.sessions[i];
        if !s.open || s.authenticating.is_none() {
            return;
        }
        if ok {
            s.authenticating = None;
            s.next_ping = Some(self.now + PING);
            self.process_held(i);
        } else {
            self.close(i, Some(1008), 1008);
        }
    }

    fn answer(&mut self, q: u64, i: usize, t: usize, what: Asked, allow: bool) {
        if !self.sessions[i].open || self.sessions[i].pending.map(|p| p.0) != Some(q) {
            return;
        }
        self.sessions[i].pending = None;
        if allow {
            match what {
                Asked::Subscribe(opts) => self.apply_subscribe(i, t, opts),
                Asked::Presence => self.answer_presence(i, t),
            }
        } else {
            self.enqueue(
                i,
                Out::Text(error(
                    "forbidden",
                    &format!("not allowed to subscribe to {}", TOPICS[t]),
                )),
            );
        }
        self.process_held(i);
    }

    fn timeout(&mut self) {
        self.expire();
        self.settle();
        // The hub serves every due session in key order.
        for i in self.in_key_order(|_| true) {
            let s = &mut self.sessions[i];
            if !s.open {
                continue;
            }
            if s.authenticating.is_some_and(|d| d <= self.now) {
                self.close(i, Some(1008), 1008);
            } else if s.last_received + IDLE <= self.now {
                self.close(i, Some(4000), 4000);
            } else if s.next_ping.is_some_and(|p| p <= self.now) {
                s.next_ping = Some(self.now + PING);
                self.enqueue(i, Out::Ping);
            }
        }
    }
}

/// The system under test plus what an adapter would remember.
struct Driver {
    hub: Hub<u32>,
    now: Instant,
    received: BTreeMap<SessionId, Vec<Out>>,
    outstanding: BTreeMap<SessionId, VecDeque<usize>>,
    closed_events: BTreeMap<SessionId, Vec<u16>>,
    /// Authorize tickets asked by the hub, in order: (ticket, session, topic).
    tickets: VecDeque<(AuthorizeTicket, SessionId, String)>,
    authenticate_events: Vec<SessionId>,
}

impl Driver {
    fn collect(&mut self) {
        while let Some(a) = self.hub.poll_action() {
            match a {
                Action::Send { id, frame } => {
                    self.outstanding
                        .entry(id)
                        .or_default()
                        .push_back(frame.len());
                    let out = match frame {
                        OutFrame::Text(b) => Out::Text(String::from_utf8(b.to_vec()).unwrap()),
                        OutFrame::Ping(_) => Out::Ping,
                        OutFrame::Pong(_) => Out::Pong,
                    };
                    self.received.entry(id).or_default().push(out);
                }
                Action::Close { id, code, .. } => {
                    self.outstanding.remove(&id);
                    self.received.entry(id).or_default().push(Out::Close(code));
                }
            }
        }
        while let Some(e) = self.hub.poll_event() {
            match e {
                Event::Closed { id, reason, .. } => {
                    self.outstanding.remove(&id);
                    self.closed_events
                        .entry(id)
                        .or_default()
                        .push(reason.code());
                }
                Event::Authorize {
                    ticket, id, topic, ..
                } => self.tickets.push_back((ticket, id, topic)),
                Event::Authenticate { id } => self.authenticate_events.push(id),
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
}

/// Runs `ops` against a fresh hub and the model; `Err` describes the first
/// divergence. Inputs are normalised (topic indexes modulo [`TOPICS`], sizes and
/// times bounded) so arbitrary values are accepted.
pub fn run(ops: &[Op]) -> Result<(), String> {
    let ops: Vec<Op> = ops.iter().map(Op::normalised).collect();
    let start = Instant::now();
    let mut d = Driver {
        hub: Hub::new(config(), SEED),
        now: start,
        received: BTreeMap::new(),
        outstanding: BTreeMap::new(),
        closed_events: BTreeMap::new(),
        tickets: VecDeque::new(),
        authenticate_events: Vec::new(),
    };
    let mut m = Model {
        now: start,
        sessions: Vec::new(),
        questions: VecDeque::new(),
        next_question: 0,
        ids: SeededIds::new(SEED),
        history: None,
        dropped: None,
        free: Vec::new(),
        slots: 0,
    };
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Open { pre_authenticated } => {
                let id = if *pre_authenticated {
                    d.hub.handle_open_authenticated(d.now, 0)
                } else {
                    d.hub.handle_open(d.now)
                };
                ensure_eq!(id.as_u64(), m.ids.next_id(), "step {step}: session id");
                m.open(id, *pre_authenticated);
            }
            Op::Auth { s, ok } => {
                if let Some((i, id)) = m.target(*s) {
                    let answer = if *ok {
                        Ok(1)
                    } else {
                        Err(Rejection::new("no"))
                    };
                    let _ = d.hub.handle_auth(d.now, id, answer);
                    m.auth(i, *ok);
                }
            }
            Op::Subscribe { s, t } => client(&mut d, &mut m, *s, Msg::Subscribe(*t)),
            Op::Presence { s, t } => client(&mut d, &mut m, *s, Msg::Presence(*t)),
            Op::SubscribeSince {
                s,
                t,
                since,
                history,
                presence,
            } => {
                // Offsets count back from the latest (7: one past it), so
                // positions near the ring's edges are common.
                let since = since.map(|(e, back)| {
                    let (epoch, last) = match &m.history {
                        Some(h) => (h.epoch.clone(), h.last),
                        None => ("none".to_owned(), 0),
                    };
                    let epoch = if e == 0 { epoch } else { "nope".to_owned() };
                    let offset = if back == 7 {
                        last + 1
                    } else {
                        last.saturating_sub(back)
                    };
                    (epoch, offset)
                });
                let opts = Opts {
                    since,
                    history: *history,
                    presence: *presence,
                };
                client(&mut d, &mut m, *s, Msg::SubscribeWith(*t, opts));
            }
            Op::Unsubscribe { s, t } => client(&mut d, &mut m, *s, Msg::Unsubscribe(*t)),
            Op::Publish { s, t, size } => client(&mut d, &mut m, *s, Msg::Publish(*t, *size)),
            Op::Garbage { s } => client(&mut d, &mut m, *s, Msg::Garbage),
            Op::ServerPublish { t, size } => {
                d.hub
                    .publish_at(d.now, TOPICS[*t], data(*size).as_bytes())
                    .unwrap();
                m.fan_out(*t, *size);
            }
            Op::ServerClose { s } => {
                if let Some((i, id)) = m.target(*s) {
                    let r = d.hub.close(id, 4100, "bye");
                    ensure_eq!(r.is_ok(), m.sessions[i].open);
                    if m.sessions[i].open {
                        m.close(i, Some(4100), 4100);
                    }
                }
            }
            Op::Flush { s, n } => {
                if let Some((i, id)) = m.target(*s) {
                    let q = d.outstanding.entry(id).or_default();
                    let k = (*n).min(q.len());
                    let bytes: usize = q.drain(..k).sum();
                    d.hub.handle_flushed(d.now, id, k, bytes).unwrap();
                    let mq = &mut m.sessions[i].queue;
                    let k = k.min(mq.len());
                    mq.drain(..k);
                    if m.sessions[i].open {
                        m.drain_backlog(i);
                    }
                }
            }
            Op::Ping { s } => {
                if let Some((i, id)) = m.target(*s) {
                    d.hub.handle_frame(d.now, id, Frame::Ping(Bytes::new()));
                    if m.sessions[i].open {
                        m.sessions[i].last_received = m.now;
                        m.enqueue(i, Out::Pong);
                    }
                }
            }
            Op::Pong { s } => {
                if let Some((i, id)) = m.target(*s) {
                    d.hub.handle_frame(d.now, id, Frame::Pong(Bytes::new()));
                    if m.sessions[i].open {
                        m.sessions[i].last_received = m.now;
                    }
                }
            }
            Op::PeerClose { s } => {
                if let Some((i, id)) = m.target(*s) {
                    d.hub
                        .handle_frame(d.now, id, Frame::Close(Some((1000, String::new()))));
                    if m.sessions[i].open {
                        m.close(i, Some(1000), 1000);
                    }
                }
            }
            Op::TransportClosed { s } => {
                if let Some((i, id)) = m.target(*s) {
                    d.hub.handle_transport_closed(d.now, id);
                    if m.sessions[i].open {
                        m.close(i, None, 1006);
                    }
                }
            }
            Op::Answer { allow } => {
                if let Some((q, i, t, what)) = m.questions.pop_front() {
                    let (ticket, id, topic) =
                        d.tickets.pop_front().expect("hub asked fewer questions");
                    ensure_eq!(id, m.sessions[i].id);
                    ensure_eq!(topic.as_str(), TOPICS[t]);
                    d.hub.handle_authorize(d.now, ticket, *allow);
                    m.answer(q, i, t, what, *allow);
                }
            }
            Op::Advance { ms } => {
                d.now += Duration::from_millis(*ms);
                m.now = d.now;
                d.hub.handle_timeout(d.now);
                m.timeout();
                if let Some((at, _)) = d.hub.poll_timeout() {
                    ensure!(at > d.now, "step {step}: deadline {at:?} not after now");
                }
            }
        }
        d.collect();
        check(&d, &m, step)?;
    }
    Ok(())
}

fn client(d: &mut Driver, m: &mut Model, s: usize, msg: Msg) {
    if let Some((i, id)) = m.target(s) {
        d.hub
            .handle_frame(d.now, id, Frame::Text(Bytes::from(msg.wire())));
        m.arrive(i, msg);
    }
}

fn check(d: &Driver, m: &Model, step: usize) -> Result<(), String> {
    let empty = Vec::new();
    for s in &m.sessions {
        let got = d.received.get(&s.id).unwrap_or(&empty);
        ensure_eq!(got, &s.received, "step {}: session {} received", step, s.id);
        let closes = d.closed_events.get(&s.id).cloned().unwrap_or_default();
        ensure_eq!(
            closes,
            s.close_code.into_iter().collect::<Vec<_>>(),
            "step {}: closed events",
            step
        );
        ensure_eq!(d.hub.contains(s.id), s.open);
        if s.open {
            let (msgs, bytes) = d.hub.queued(s.id).unwrap();
            ensure_eq!(msgs, s.queue.len());
            ensure_eq!(bytes, s.queue.iter().sum::<usize>());
            ensure!(msgs <= MAX_MSGS);
            ensure!(bytes <= MAX_BYTES || msgs == 1);
            let topics: Vec<&str> = d.hub.topics_of(s.id).unwrap().collect();
            let want: Vec<&str> = s
                .topics
                .iter()
                .map(|&t| TOPICS[t])
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            ensure_eq!(topics, want);
        } else {
            ensure!(d.hub.queued(s.id).is_none());
        }
    }
    let backlogged = m
        .sessions
        .iter()
        .filter(|s| s.open && s.backlog.is_some())
        .count();
    ensure_eq!(
        d.hub.backlogged_sessions(),
        backlogged,
        "step {}: sessions holding a paced replay",
        step
    );
    for (t, name) in TOPICS.iter().enumerate() {
        let want = m
            .sessions
            .iter()
            .filter(|s| s.open && s.topics.contains(&t))
            .count();
        ensure_eq!(d.hub.subscriber_count(name), want);
    }
    let position = d.hub.history_position(TOPICS[HISTORY_TOPIC]);
    let want = m.history.as_ref().map(|h| (h.epoch.as_str(), h.last));
    ensure_eq!(position, want, "step {}: history position", step);
    let held = m.history.as_ref().map_or(0, |h| h.entries.len());
    ensure_eq!(
        d.hub.metrics().history_entries,
        held,
        "step {}: history entries",
        step
    );
    let watching: usize = m
        .sessions
        .iter()
        .filter(|s| s.open)
        .map(|s| s.watching.len())
        .sum();
    ensure_eq!(
        d.hub.metrics().presence_watchers,
        watching,
        "step {}: presence watchers",
        step
    );
    let live_questions = m.questions.len();
    ensure_eq!(
        d.tickets.len(),
        live_questions,
        "step {}: questions asked",
        step
    );
    Ok(())
}
