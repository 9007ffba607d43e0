//! Determinism: the same seed and the same inputs give byte-identical outputs.
//! The inputs include arbitrary frame payloads, so this doubles as a no-panic
//! check on hostile input.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use live_core::{Action, Event, Frame, Hub, HubConfig, OutFrame, Rejection, SessionId};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Input {
    Open(bool),
    Auth(usize, bool),
    Text(usize, Vec<u8>),
    Binary(usize, Vec<u8>),
    Command(usize, u8, u8),
    Json(usize, String),
    Ping(usize, Vec<u8>),
    Close(usize, u16),
    Flush(usize),
    ServerPublish(u8),
    Answer(bool),
    Advance(u64),
}

fn input() -> impl Strategy<Value = Input> {
    let s = 0usize..6;
    prop_oneof![
        2 => any::<bool>().prop_map(Input::Open),
        2 => (s.clone(), any::<bool>()).prop_map(|(s, ok)| Input::Auth(s, ok)),
        2 => (s.clone(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(s, b)| Input::Text(s, b)),
        1 => (s.clone(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(s, b)| Input::Binary(s, b)),
        6 => (s.clone(), 0u8..3, 0u8..4).prop_map(|(s, c, t)| Input::Command(s, c, t)),
        3 => (s.clone(), near_miss()).prop_map(|(s, j)| Input::Json(s, j)),
        1 => (s.clone(), prop::collection::vec(any::<u8>(), 0..130)).prop_map(|(s, b)| Input::Ping(s, b)),
        1 => (s.clone(), any::<u16>()).prop_map(|(s, c)| Input::Close(s, c)),
        3 => s.prop_map(Input::Flush),
        2 => (0u8..4).prop_map(Input::ServerPublish),
        1 => any::<bool>().prop_map(Input::Answer),
        2 => (0u64..20_000).prop_map(Input::Advance),
    ]
}

/// Messages close to valid ones: every field may be missing, of the wrong type,
/// reserved, or cut short.
fn near_miss() -> impl Strategy<Value = String> {
    let topic = prop::sample::select(vec![
        r#""subscribe""#,
        r#""unsubscribe""#,
        r#""publish""#,
        r#""error""#,
        r#""sync:s""#,
        r#""a""#,
        r#""""#,
        "1",
        "null",
        "[]",
        r#""\u0000""#,
    ]);
    let inner = prop::sample::select(vec![
        r#"{"topic":"a"}"#,
        r#"{"topic":"sync:s","data":1}"#,
        r#"{"topic":"error"}"#,
        r#"{"topic":2}"#,
        r#"{"data":{}}"#,
        "{}",
        r#""a""#,
        "null",
        "[1]",
        r#"{"topic":"a","data":"#,
    ]);
    (topic, inner, any::<bool>(), 0usize..8).prop_map(|(t, d, with_data, cut)| {
        let full = if with_data {
            format!(r#"{{"topic":{t},"data":{d}}}"#)
        } else {
            format!(r#"{{"topic":{t}}}"#)
        };
        // Now and then, cut one to three bytes off the end.
        let keep = full.len().saturating_sub(cut.saturating_sub(4));
        full[..keep].to_owned()
    })
}

const TOPICS: [&str; 4] = ["a", "b", "sync:s", "c"];

fn config() -> HubConfig {
    let mut c = HubConfig::default();
    c.limits.max_queued_messages = 3;
    c.limits.max_queued_bytes = 200;
    c.limits.read_limit = 100;
    c.timers.ping_interval = Some(Duration::from_secs(5));
    c.timers.idle_timeout = Some(Duration::from_secs(12));
    c.timers.authorize_timeout = Some(Duration::from_secs(3));
    c.backplane_events = true;
    c
}

/// Runs `inputs` on a fresh hub and renders every output, in order, as bytes.
fn transcript(seed: u64, start: Instant, inputs: &[Input]) -> Vec<u8> {
    let mut hub: Hub<u8> = Hub::new(config(), seed);
    let mut now = start;
    let mut ids: Vec<SessionId> = Vec::new();
    let mut unflushed: Vec<(SessionId, usize)> = Vec::new();
    let mut tickets = Vec::new();
    let mut out = String::new();
    let pick = |ids: &[SessionId], s: usize| (!ids.is_empty()).then(|| ids[s % ids.len()]);
    for input in inputs {
        match input {
            Input::Open(pre) => ids.push(if *pre {
                hub.handle_open_authenticated(now, 1)
            } else {
                hub.handle_open(now)
            }),
            Input::Auth(s, ok) => {
                if let Some(id) = pick(&ids, *s) {
                    let r = hub.handle_auth(
                        now,
                        id,
                        if *ok {
                            Ok(2)
                        } else {
                            Err(Rejection::new("no"))
                        },
                    );
                    let _ = writeln!(out, "auth -> {r:?}");
                }
            }
            Input::Text(s, b) => {
                if let Some(id) = pick(&ids, *s) {
                    hub.handle_frame(now, id, Frame::Text(Bytes::from(b.clone())));
                }
            }
            Input::Binary(s, b) => {
                if let Some(id) = pick(&ids, *s) {
                    hub.handle_frame(now, id, Frame::Binary(Bytes::from(b.clone())));
                }
            }
            Input::Command(s, c, t) => {
                if let Some(id) = pick(&ids, *s) {
                    let name = ["subscribe", "unsubscribe", "publish"][*c as usize];
                    let text = format!(
                        r#"{{"topic":"{name}","data":{{"topic":"{}","data":[{c},{t}]}}}}"#,
                        TOPICS[*t as usize]
                    );
                    hub.handle_frame(now, id, Frame::Text(Bytes::from(text)));
                }
            }
            Input::Json(s, text) => {
                if let Some(id) = pick(&ids, *s) {
                    hub.handle_frame(now, id, Frame::Text(Bytes::from(text.clone())));
                }
            }
            Input::Ping(s, b) => {
                if let Some(id) = pick(&ids, *s) {
                    hub.handle_frame(now, id, Frame::Ping(Bytes::from(b.clone())));
                }
            }
            Input::Close(s, code) => {
                if let Some(id) = pick(&ids, *s) {
                    hub.handle_frame(now, id, Frame::Close(Some((*code, "x".into()))));
                }
            }
            Input::Flush(s) => {
                if let Some(id) = pick(&ids, *s) {
                    let mine: Vec<usize> = unflushed
                        .iter()
                        .filter(|(i, _)| *i == id)
                        .map(|(_, l)| *l)
                        .collect();
                    unflushed.retain(|(i, _)| *i != id);
                    let r = hub.handle_flushed(now, id, mine.len(), mine.iter().sum());
                    let _ = writeln!(out, "flush -> {r:?}");
                }
            }
            Input::ServerPublish(t) => {
                let r = hub.publish(TOPICS[*t as usize], b"{\"server\":true}");
                let _ = writeln!(out, "publish -> {r:?}");
            }
            Input::Answer(allow) => {
                if !tickets.is_empty() {
                    hub.handle_authorize(now, tickets.remove(0), *allow);
                }
            }
            Input::Advance(ms) => {
                now += Duration::from_millis(*ms);
                hub.handle_timeout(now);
            }
        }
        while let Some(a) = hub.poll_action() {
            if let Action::Send { id, frame } = &a {
                unflushed.push((*id, frame.len()));
                if let OutFrame::Text(b) = frame {
                    assert!(std::str::from_utf8(b).is_ok(), "text frame is not UTF-8");
                }
            }
            let _ = writeln!(out, "{a:?}");
        }
        while let Some(e) = hub.poll_event() {
            if let Event::Authorize { ticket, .. } = &e {
                tickets.push(*ticket);
            }
            let _ = writeln!(out, "{e:?}");
        }
        match hub.poll_timeout() {
            Some((at, why)) => {
                let _ = writeln!(out, "timeout +{:?} {why:?}", at - start);
            }
            None => out.push_str("no timeout\n"),
        }
        let _ = writeln!(out, "{:?}", hub.metrics());
    }
    out.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn same_seed_same_inputs_same_bytes(
        seed in any::<u64>(),
        inputs in prop::collection::vec(input(), 1..150),
    ) {
        let start = Instant::now();
        let first = transcript(seed, start, &inputs);
        let second = transcript(seed, start, &inputs);
        prop_assert!(first == second, "transcripts differ");
    }
}

#[test]
fn a_different_seed_changes_only_the_ids() {
    let start = Instant::now();
    let inputs = [
        Input::Open(true),
        Input::Open(true),
        Input::Command(0, 0, 0),
        Input::Command(1, 2, 0),
    ];
    let a = String::from_utf8(transcript(1, start, &inputs)).unwrap();
    let b = String::from_utf8(transcript(2, start, &inputs)).unwrap();
    assert_ne!(a, b, "session ids should depend on the seed");
    assert!(a.contains(r#"{\"topic\":\"a\",\"data\":[2,0]}"#), "{a}");
    assert_eq!(a.lines().count(), b.lines().count());
}
