//! The live hub driven by an arbitrary operation list (open, auth, frames of any
//! content, subscribe storms, publishes, flush reports, timeouts, closes).
//!
//! Two checks per input:
//! 1. the operations the reference model understands (everything but raw frames)
//!    run against the hub and `live_core::testing::model` side by side, exactly as
//!    the property test does;
//! 2. the whole list, raw frames and storms over many topics included, runs
//!    against a hub checked for the rules that hold whatever the content: no
//!    panic, a session closes once and hears nothing after its close, queues and
//!    topic sets stay within their limits, topic membership agrees both ways,
//!    every text frame sent is JSON (a `subscribed` reply with its epoch,
//!    offset and recovered flag), history memory stays within the rules'
//!    sizes, and the next deadline is in the future. Subscribes with
//!    `since`/`history`/`presence` and presence queries are part of both.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use live_core::testing::model::{self, TOPICS};
use live_core::{
    Action, AuthorizeTicket, Event, Frame, HistoryLimits, HistoryRule, Hub, HubConfig, OutFrame,
    Rejection, SessionId,
};

/// One operation of the fuzz input.
#[derive(Debug, Clone, Arbitrary)]
#[allow(missing_docs)]
pub enum Op {
    Open {
        pre_authenticated: bool,
    },
    Auth {
        s: u8,
        ok: bool,
    },
    Subscribe {
        s: u8,
        t: u8,
    },
    Unsubscribe {
        s: u8,
        t: u8,
    },
    /// A subscribe with options: `since` (epoch choice, offset back from
    /// the latest), `history` and `presence`.
    SubscribeSince {
        s: u8,
        t: u8,
        since: Option<(u8, u8)>,
        history: bool,
        presence: bool,
    },
    /// A presence query.
    Presence {
        s: u8,
        t: u8,
    },
    Publish {
        s: u8,
        t: u8,
        size: u8,
    },
    ServerPublish {
        t: u8,
        size: u8,
    },
    ServerClose {
        s: u8,
    },
    Flush {
        s: u8,
        n: u8,
    },
    Ping {
        s: u8,
    },
    Pong {
        s: u8,
    },
    Garbage {
        s: u8,
    },
    PeerClose {
        s: u8,
    },
    TransportClosed {
        s: u8,
    },
    Answer {
        allow: bool,
    },
    Advance {
        ms: u16,
    },
    /// `n` subscribes to distinct topics in a row.
    Storm {
        s: u8,
        n: u8,
    },
    /// A frame of any content.
    Raw {
        s: u8,
        binary: bool,
        bytes: Vec<u8>,
    },
}

/// Runs one input; panics on a broken rule.
pub fn run(data: &[u8]) {
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let ops = &ops[..ops.len().min(300)];
    if let Err(e) = model::run(&model_ops(ops)) {
        panic!("hub differs from the reference model: {e}");
    }
    invariants(ops);
}

/// The operations the model understands; a storm becomes subscribes to every
/// model topic in turn.
fn model_ops(ops: &[Op]) -> Vec<model::Op> {
    use model::Op as M;
    let mut out = Vec::new();
    for op in ops {
        let s = |s: &u8| usize::from(*s);
        out.push(match op {
            Op::Open { pre_authenticated } => M::Open {
                pre_authenticated: *pre_authenticated,
            },
            Op::Auth { s: i, ok } => M::Auth { s: s(i), ok: *ok },
            Op::Subscribe { s: i, t } => M::Subscribe {
                s: s(i),
                t: usize::from(*t),
            },
            Op::Unsubscribe { s: i, t } => M::Unsubscribe {
                s: s(i),
                t: usize::from(*t),
            },
            Op::Presence { s: i, t } => M::Presence {
                s: s(i),
                t: usize::from(*t),
            },
            Op::SubscribeSince {
                s: i,
                t,
                since,
                history,
                presence,
            } => M::SubscribeSince {
                s: s(i),
                t: usize::from(*t),
                since: since.map(|(e, back)| (e, u64::from(back))),
                history: *history,
                presence: *presence,
            },
            Op::Publish { s: i, t, size } => M::Publish {
                s: s(i),
                t: usize::from(*t),
                size: usize::from(*size),
            },
            Op::ServerPublish { t, size } => M::ServerPublish {
                t: usize::from(*t),
                size: usize::from(*size),
            },
            Op::ServerClose { s: i } => M::ServerClose { s: s(i) },
            Op::Flush { s: i, n } => M::Flush {
                s: s(i),
                n: usize::from(*n),
            },
            Op::Ping { s: i } => M::Ping { s: s(i) },
            Op::Pong { s: i } => M::Pong { s: s(i) },
            Op::Garbage { s: i } => M::Garbage { s: s(i) },
            Op::PeerClose { s: i } => M::PeerClose { s: s(i) },
            Op::TransportClosed { s: i } => M::TransportClosed { s: s(i) },
            Op::Answer { allow } => M::Answer { allow: *allow },
            Op::Advance { ms } => M::Advance { ms: u64::from(*ms) },
            Op::Storm { s: i, n } => {
                out.extend((0..usize::from(*n) % 8).map(|t| M::Subscribe {
                    s: s(i),
                    t: t % TOPICS.len(),
                }));
                continue;
            }
            Op::Raw { .. } => continue,
        });
    }
    out
}

const MAX_TOPICS: usize = 4;

fn config() -> HubConfig {
    let mut c = HubConfig::default();
    c.history = vec![
        HistoryRule::new("b", HistoryLimits::new(3, Some(Duration::from_secs(20)))),
        HistoryRule::new("t*", HistoryLimits::new(2, None)),
    ];
    c.limits.max_queued_messages = 6;
    c.limits.max_queued_bytes = 400;
    c.limits.max_topics_per_session = MAX_TOPICS;
    c.limits.max_pending_inbound = 3;
    c.limits.max_topic_len = 16;
    c.limits.read_limit = 512;
    c.timers.ping_interval = Some(Duration::from_secs(10));
    c.timers.idle_timeout = Some(Duration::from_secs(35));
    c.timers.auth_timeout = Some(Duration::from_secs(5));
    c.timers.authorize_timeout = Some(Duration::from_secs(3));
    c
}

/// The hub plus what an adapter remembers about it.
struct Checked {
    hub: Hub<u8>,
    now: Instant,
    ids: Vec<SessionId>,
    closed: BTreeSet<SessionId>,
    close_sent: BTreeSet<SessionId>,
    outstanding: BTreeMap<SessionId, VecDeque<usize>>,
    tickets: VecDeque<AuthorizeTicket>,
    topics_seen: BTreeSet<String>,
}

impl Checked {
    fn target(&self, s: u8) -> Option<SessionId> {
        (!self.ids.is_empty()).then(|| self.ids[usize::from(s) % self.ids.len()])
    }

    fn text(&mut self, s: u8, frame: Frame) {
        if let Some(id) = self.target(s) {
            self.hub.handle_frame(self.now, id, frame);
        }
    }

    fn topic(&mut self, t: u8) -> String {
        let name = match t % 6 {
            0..=2 => TOPICS[usize::from(t % 3)].to_owned(),
            _ => format!("t{}", t / 6),
        };
        self.topics_seen.insert(name.clone());
        name
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Open { pre_authenticated } => {
                let id = if *pre_authenticated {
                    self.hub.handle_open_authenticated(now, 0)
                } else {
                    self.hub.handle_open(now)
                };
                assert!(!self.ids.contains(&id), "session id reused");
                self.ids.push(id);
            }
            Op::Auth { s, ok } => {
                if let Some(id) = self.target(*s) {
                    let answer = if *ok {
                        Ok(1)
                    } else {
                        Err(Rejection::new("no"))
                    };
                    let _ = self.hub.handle_auth(now, id, answer);
                }
            }
            Op::Subscribe { s, t } | Op::Unsubscribe { s, t } => {
                let command = if matches!(op, Op::Subscribe { .. }) {
                    "subscribe"
                } else {
                    "unsubscribe"
                };
                let topic = self.topic(*t);
                let text = format!(r#"{{"topic":"{command}","data":{{"topic":"{topic}"}}}}"#);
                self.text(*s, Frame::Text(Bytes::from(text)));
            }
            Op::SubscribeSince {
                s,
                t,
                since,
                history,
                presence,
            } => {
                let topic = self.topic(*t);
                let since = match since {
                    Some((e, back)) => {
                        let (epoch, last) = self
                            .hub
                            .history_position(&topic)
                            .map_or(("x".to_owned(), 0), |(e, o)| (e.to_owned(), o));
                        let epoch = if e % 2 == 0 { epoch } else { "nope".to_owned() };
                        let offset = last.saturating_sub(u64::from(*back));
                        format!(r#","since":{{"epoch":"{epoch}","offset":{offset}}}"#)
                    }
                    None => String::new(),
                };
                let text = format!(
                    r#"{{"topic":"subscribe","data":{{"topic":"{topic}"{since},"history":{history},"presence":{presence}}}}}"#
                );
                self.text(*s, Frame::Text(Bytes::from(text)));
            }
            Op::Presence { s, t } => {
                let topic = self.topic(*t);
                let text = format!(r#"{{"topic":"presence","data":{{"topic":"{topic}"}}}}"#);
                self.text(*s, Frame::Text(Bytes::from(text)));
            }
            Op::Publish { s, t, size } => {
                let topic = self.topic(*t);
                let data = "x".repeat(usize::from(*size));
                let text = format!(
                    r#"{{"topic":"publish","data":{{"topic":"{topic}","data":"{data}"}}}}"#
                );
                self.text(*s, Frame::Text(Bytes::from(text)));
            }
            Op::ServerPublish { t, size } => {
                let topic = self.topic(*t);
                let data = format!("\"{}\"", "y".repeat(usize::from(*size)));
                self.hub
                    .publish(&topic, data.as_bytes())
                    .expect("valid JSON");
            }
            Op::ServerClose { s } => {
                if let Some(id) = self.target(*s) {
                    let open = self.hub.contains(id);
                    assert_eq!(self.hub.close(id, 4100, "bye").is_ok(), open);
                }
            }
            Op::Flush { s, n } => {
                if let Some(id) = self.target(*s) {
                    let q = self.outstanding.entry(id).or_default();
                    let k = usize::from(*n).min(q.len());
                    let bytes: usize = q.drain(..k).sum();
                    let r = self.hub.handle_flushed(now, id, k, bytes);
                    assert!(r.is_ok() || !self.hub.contains(id), "{r:?}");
                }
            }
            Op::Ping { s } => self.text(*s, Frame::Ping(Bytes::from_static(b"p"))),
            Op::Pong { s } => self.text(*s, Frame::Pong(Bytes::new())),
            Op::Garbage { s } => self.text(*s, Frame::Text(Bytes::from_static(b"{not json"))),
            Op::PeerClose { s } => self.text(*s, Frame::Close(Some((1000, String::new())))),
            Op::TransportClosed { s } => {
                if let Some(id) = self.target(*s) {
                    self.hub.handle_transport_closed(now, id);
                }
            }
            Op::Answer { allow } => {
                if let Some(ticket) = self.tickets.pop_front() {
                    self.hub.handle_authorize(now, ticket, *allow);
                }
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.hub.handle_timeout(self.now);
                if let Some((at, reason)) = self.hub.poll_timeout() {
                    assert!(at > self.now, "deadline {reason:?} not after now");
                }
            }
            Op::Storm { s, n } => {
                for i in 0..*n {
                    let text = format!(r#"{{"topic":"subscribe","data":{{"topic":"s{i}"}}}}"#);
                    self.topics_seen.insert(format!("s{i}"));
                    self.text(*s, Frame::Text(Bytes::from(text)));
                }
            }
            Op::Raw { s, binary, bytes } => {
                let b = Bytes::copy_from_slice(bytes);
                self.text(
                    *s,
                    if *binary {
                        Frame::Binary(b)
                    } else {
                        Frame::Text(b)
                    },
                );
            }
        }
    }

    fn collect(&mut self) {
        while let Some(action) = self.hub.poll_action() {
            match action {
                Action::Send { id, frame } => {
                    assert!(!self.close_sent.contains(&id), "{id} sent to after close");
                    if let OutFrame::Text(text) = &frame {
                        let v: serde_json::Value =
                            serde_json::from_slice(text).expect("text frames are JSON");
                        assert!(v["topic"].is_string(), "{v}");
                        if v["topic"] == "subscribed" {
                            let d = &v["data"];
                            assert!(d["epoch"].is_string() && d["offset"].is_u64(), "{v}");
                            assert!(d["recovered"].is_boolean(), "{v}");
                        }
                    }
                    self.outstanding
                        .entry(id)
                        .or_default()
                        .push_back(frame.len());
                }
                Action::Close { id, code, .. } => {
                    assert!(self.close_sent.insert(id), "{id} closed twice");
                    assert!((1000..5000).contains(&code), "close code {code}");
                    self.outstanding.remove(&id);
                }
            }
        }
        while let Some(event) = self.hub.poll_event() {
            match event {
                Event::Closed { id, .. } => {
                    assert!(self.closed.insert(id), "{id} reported closed twice");
                    self.outstanding.remove(&id);
                }
                Event::Authorize { ticket, .. } => self.tickets.push_back(ticket),
                _ => {}
            }
        }
    }

    fn check(&self) {
        let limits = &self.hub.config().limits;
        // History memory stays within the rules' sizes (3 at most here).
        let m = self.hub.metrics();
        assert!(m.history_entries <= 3 * m.history_topics, "{m:?}");
        assert_eq!(m.history_entries == 0, m.history_bytes == 0, "{m:?}");
        let mut members: BTreeMap<String, usize> = BTreeMap::new();
        for &id in &self.ids {
            assert_eq!(self.hub.contains(id), !self.closed.contains(&id));
            let Some((msgs, bytes)) = self.hub.queued(id) else {
                continue;
            };
            assert!(msgs <= limits.max_queued_messages);
            assert!(bytes <= limits.max_queued_bytes || msgs == 1);
            let topics: Vec<&str> = self.hub.topics_of(id).expect("open").collect();
            assert!(topics.len() <= MAX_TOPICS);
            for t in topics {
                *members.entry(t.to_owned()).or_default() += 1;
            }
        }
        for t in &self.topics_seen {
            let want = members.get(t).copied().unwrap_or(0);
            assert_eq!(self.hub.subscriber_count(t), want, "subscribers of {t}");
        }
        assert_eq!(self.hub.session_count(), self.ids.len() - self.closed.len());
    }
}

fn invariants(ops: &[Op]) {
    let mut c = Checked {
        hub: Hub::new(config(), 3),
        now: Instant::now(),
        ids: Vec::new(),
        closed: BTreeSet::new(),
        close_sent: BTreeSet::new(),
        outstanding: BTreeMap::new(),
        tickets: VecDeque::new(),
        topics_seen: BTreeSet::new(),
    };
    for op in ops {
        c.apply(op);
        c.collect();
        c.check();
    }
}
