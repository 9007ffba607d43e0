//! State-machine property test: random input sequences drive the hub and a small
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

mod support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use live_core::{Action, Event, Frame, Hub, HubConfig, OutFrame, Rejection, SessionId};
use proptest::prelude::*;

const TOPICS: [&str; 3] = ["a", "b", "sync:x"];
const MAX_MSGS: usize = 4;
const MAX_BYTES: usize = 150;
const MAX_TOPICS: usize = 2;
const MAX_HELD: usize = 3;
const PING: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(35);
const AUTH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
enum Op {
    Open { pre_authenticated: bool },
    Auth { s: usize, ok: bool },
    Subscribe { s: usize, t: usize },
    Unsubscribe { s: usize, t: usize },
    Publish { s: usize, t: usize, size: usize },
    ServerPublish { t: usize, size: usize },
    ServerClose { s: usize },
    Flush { s: usize, n: usize },
    Ping { s: usize },
    Pong { s: usize },
    Garbage { s: usize },
    PeerClose { s: usize },
    TransportClosed { s: usize },
    Answer { allow: bool },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0usize..8;
    let t = 0usize..TOPICS.len();
    prop_oneof![
        3 => any::<bool>().prop_map(|p| Op::Open { pre_authenticated: p }),
        2 => (s.clone(), prop::bool::weighted(0.85)).prop_map(|(s, ok)| Op::Auth { s, ok }),
        4 => (s.clone(), t.clone()).prop_map(|(s, t)| Op::Subscribe { s, t }),
        2 => (s.clone(), t.clone()).prop_map(|(s, t)| Op::Unsubscribe { s, t }),
        4 => (s.clone(), t.clone(), 0usize..60).prop_map(|(s, t, size)| Op::Publish { s, t, size }),
        2 => (t, 0usize..60).prop_map(|(t, size)| Op::ServerPublish { t, size }),
        1 => s.clone().prop_map(|s| Op::ServerClose { s }),
        4 => (s.clone(), 0usize..4).prop_map(|(s, n)| Op::Flush { s, n }),
        1 => s.clone().prop_map(|s| Op::Ping { s }),
        1 => s.clone().prop_map(|s| Op::Pong { s }),
        1 => s.clone().prop_map(|s| Op::Garbage { s }),
        1 => s.clone().prop_map(|s| Op::PeerClose { s }),
        1 => s.prop_map(|s| Op::TransportClosed { s }),
        2 => any::<bool>().prop_map(|allow| Op::Answer { allow }),
        3 => (0u64..15_000).prop_map(|ms| Op::Advance { ms }),
    ]
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
    c
}

/// A client message as the model sees it.
#[derive(Debug, Clone)]
enum Msg {
    Subscribe(usize),
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

#[derive(Debug)]
struct Model {
    now: Instant,
    sessions: Vec<MSession>,
    /// Questions asked, in order: (question number, session index, topic index).
    questions: VecDeque<(u64, usize, usize)>,
    next_question: u64,
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
        self.sessions.push(MSession {
            id,
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
        });
    }

    fn close(&mut self, i: usize, code: Option<u16>, reported: u16) {
        let s = &mut self.sessions[i];
        s.open = false;
        s.topics.clear();
        s.held.clear();
        s.pending = None;
        s.queue.clear();
        s.close_code = Some(reported);
        if let Some(code) = code {
            s.received.push(Out::Close(code));
        }
    }

    fn enqueue(&mut self, i: usize, out: Out) {
        let s = &mut self.sessions[i];
        let bytes: usize = s.queue.iter().sum();
        if s.queue.len() >= MAX_MSGS || (!s.queue.is_empty() && bytes + out.len() > MAX_BYTES) {
            self.close(i, Some(4008), 4008);
            return;
        }
        s.queue.push_back(out.len());
        s.received.push(out);
    }

    fn fan_out(&mut self, t: usize, size: usize) {
        let frame = envelope(TOPICS[t], &data(size));
        let subs: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.sessions[i].open && self.sessions[i].topics.contains(&t))
            .collect();
        for i in subs {
            self.enqueue(i, Out::Text(frame.clone()));
        }
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
            Msg::Subscribe(t) => {
                if self.sessions[i].topics.contains(&t) {
                    return;
                }
                if TOPICS[t].starts_with("sync:") {
                    let q = self.next_question;
                    self.next_question += 1;
                    self.sessions[i].pending = Some((q, t));
                    self.questions.push_back((q, i, t));
                } else {
                    self.apply_subscribe(i, t);
                }
            }
            Msg::Unsubscribe(t) => {
                self.sessions[i].topics.remove(&t);
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

    fn apply_subscribe(&mut self, i: usize, t: usize) {
        if self.sessions[i].topics.contains(&t) {
            return;
        }
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
            return;
        }
        self.sessions[i].topics.insert(t);
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

    fn answer(&mut self, q: u64, i: usize, t: usize, allow: bool) {
        if !self.sessions[i].open || self.sessions[i].pending.map(|p| p.0) != Some(q) {
            return;
        }
        self.sessions[i].pending = None;
        if allow {
            self.apply_subscribe(i, t);
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
        for i in 0..self.sessions.len() {
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
    tickets: VecDeque<(live_core::AuthorizeTicket, SessionId, String)>,
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

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let mut d = Driver {
        hub: Hub::new(config(), 11),
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
    };
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Open { pre_authenticated } => {
                let id = if *pre_authenticated {
                    d.hub.handle_open_authenticated(d.now, 0)
                } else {
                    d.hub.handle_open(d.now)
                };
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
            Op::Unsubscribe { s, t } => client(&mut d, &mut m, *s, Msg::Unsubscribe(*t)),
            Op::Publish { s, t, size } => client(&mut d, &mut m, *s, Msg::Publish(*t, *size)),
            Op::Garbage { s } => client(&mut d, &mut m, *s, Msg::Garbage),
            Op::ServerPublish { t, size } => {
                d.hub.publish(TOPICS[*t], data(*size).as_bytes()).unwrap();
                m.fan_out(*t, *size);
            }
            Op::ServerClose { s } => {
                if let Some((i, id)) = m.target(*s) {
                    let r = d.hub.close(id, 4100, "bye");
                    prop_assert_eq!(r.is_ok(), m.sessions[i].open);
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
                if let Some((q, i, t)) = m.questions.pop_front() {
                    let (ticket, id, topic) =
                        d.tickets.pop_front().expect("hub asked fewer questions");
                    prop_assert_eq!(id, m.sessions[i].id);
                    prop_assert_eq!(topic.as_str(), TOPICS[t]);
                    d.hub.handle_authorize(d.now, ticket, *allow);
                    m.answer(q, i, t, *allow);
                }
            }
            Op::Advance { ms } => {
                d.now += Duration::from_millis(*ms);
                m.now = d.now;
                d.hub.handle_timeout(d.now);
                m.timeout();
                if let Some((at, _)) = d.hub.poll_timeout() {
                    prop_assert!(at > d.now, "step {step}: deadline {at:?} not after now");
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

fn check(d: &Driver, m: &Model, step: usize) -> Result<(), TestCaseError> {
    let empty = Vec::new();
    for s in &m.sessions {
        let got = d.received.get(&s.id).unwrap_or(&empty);
        prop_assert_eq!(got, &s.received, "step {}: session {} received", step, s.id);
        let closes = d.closed_events.get(&s.id).cloned().unwrap_or_default();
        prop_assert_eq!(
            closes,
            s.close_code.into_iter().collect::<Vec<_>>(),
            "step {}: closed events",
            step
        );
        prop_assert_eq!(d.hub.contains(s.id), s.open);
        if s.open {
            let (msgs, bytes) = d.hub.queued(s.id).unwrap();
            prop_assert_eq!(msgs, s.queue.len());
            prop_assert_eq!(bytes, s.queue.iter().sum::<usize>());
            prop_assert!(msgs <= MAX_MSGS);
            prop_assert!(bytes <= MAX_BYTES || msgs == 1);
            let topics: Vec<&str> = d.hub.topics_of(s.id).unwrap().collect();
            let want: Vec<&str> = s
                .topics
                .iter()
                .map(|&t| TOPICS[t])
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            prop_assert_eq!(topics, want);
        } else {
            prop_assert!(d.hub.queued(s.id).is_none());
        }
    }
    for (t, name) in TOPICS.iter().enumerate() {
        let want = m
            .sessions
            .iter()
            .filter(|s| s.open && s.topics.contains(&t))
            .count();
        prop_assert_eq!(d.hub.subscriber_count(name), want);
    }
    let live_questions = m.questions.len();
    prop_assert_eq!(
        d.tickets.len(),
        live_questions,
        "step {}: questions asked",
        step
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hub_matches_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        run(&ops)?;
    }
}
