//! Transcript tests of the client replica, against a real engine where the
//! server matters.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sync_core::{
    ClientRequest, Engine, KvApp, MemoryStore, Operation, Replica, ReplicaConfig, ReplicaEvent,
    RequestId, Response, TimerReason, handler,
};

fn replica(name: &str, now: Instant) -> Replica<KvApp> {
    let mut cfg = ReplicaConfig::new("s", name);
    cfg.seed = 42;
    cfg.pull_limit = 2;
    let mut r = Replica::new(app(), cfg, now);
    r.handle_connected(now);
    r
}

/// Sends `req` to the engine the way an adapter would and returns the answer.
fn serve(e: &mut Engine<KvApp>, store: &mut MemoryStore, req: &ClientRequest) -> Response {
    let parsed = handler::parse_http(
        "POST",
        req.http_path(),
        "",
        &req.body_bytes(),
        &Default::default(),
    )
    .unwrap();
    if let Some(r) = e.handle_request(T0, RequestId(req.id.0 + 1000), parsed) {
        return r;
    }
    flush(e, store);
    drain(e)
        .into_iter()
        .find_map(|o| match o {
            sync_core::Output::Response {
                request_id,
                response,
            } if request_id.0 == req.id.0 + 1000 => Some(response),
            _ => None,
        })
        .unwrap()
}

/// Runs requests until the replica has nothing more to send.
fn sync(
    r: &mut Replica<KvApp>,
    e: &mut Engine<KvApp>,
    store: &mut MemoryStore,
    now: Instant,
) -> Vec<Operation> {
    let mut ops = Vec::new();
    while let Some(req) = r.poll_request(now) {
        ops.push(req.operation());
        let resp = serve(e, store, &req);
        r.handle_response(now, req.id, resp.status, &resp.body);
    }
    ops
}

fn state(r: &Replica<KvApp>) -> Value {
    serde_json::to_value(r.state()).unwrap()
}

#[test]
fn optimistic_apply_push_then_pull_confirms() {
    let now = Instant::now();
    let mut e = engine();
    let mut store = MemoryStore::new();
    let mut r = replica("a", now);
    assert_eq!(r.mutate(now, "incr", json!({"key":"n"})).unwrap(), 1);
    assert_eq!(r.mutate(now, "incr", json!({"key":"n"})).unwrap(), 2);
    assert_eq!(state(&r), json!({"n":2}));
    assert_eq!(
        serde_json::to_value(r.confirmed_state()).unwrap(),
        json!({})
    );
    let req = r.poll_request(now).unwrap();
    assert_eq!(req.operation(), Operation::Push);
    let body = req.body_json();
    assert_eq!(body["mutations"][1]["seq"], json!(2));
    assert_eq!(body["mutations"][0]["client_id"], json!("a"));
    assert!(r.poll_request(now).is_none(), "one request in flight");
    let resp = serve(&mut e, &mut store, &req);
    r.handle_response(now, req.id, resp.status, &resp.body);
    // Acknowledged but not yet pulled: still pending, state unchanged.
    assert_eq!(r.pending().count(), 2);
    assert_eq!(sync(&mut r, &mut e, &mut store, now), vec![Operation::Pull]);
    assert_eq!(r.pending().count(), 0);
    assert_eq!(r.cursor(), 2);
    assert_eq!(state(&r), json!({"n":2}));
    assert!(r.is_settled());
}

#[test]
fn rebase_puts_local_mutations_on_top_of_server_changes() {
    let now = Instant::now();
    let mut e = engine();
    let mut store = MemoryStore::new();
    let mut a = replica("a", now);
    let mut b = replica("b", now);
    for _ in 0..3 {
        a.mutate(now, "incr", json!({"key":"n"})).unwrap();
    }
    sync(&mut a, &mut e, &mut store, now);
    b.mutate(now, "incr", json!({"key":"n"})).unwrap();
    assert_eq!(state(&b), json!({"n":1}));
    // b pulls first (cursor 0 -> 3): its pending incr is rebased onto n=3.
    b.handle_disconnected(now);
    b.handle_connected(now);
    let req = b.poll_request(now).unwrap();
    assert_eq!(req.operation(), Operation::Push);
    let resp = serve(&mut e, &mut store, &req);
    b.handle_response(now, req.id, resp.status, &resp.body);
    sync(&mut b, &mut e, &mut store, now);
    assert_eq!(state(&b), json!({"n":4}));
    assert_eq!(b.cursor(), 4);
    // a learns about it from a poke.
    a.handle_poke(now, 4);
    assert_eq!(sync(&mut a, &mut e, &mut store, now), vec![Operation::Pull]);
    assert_eq!(state(&a), json!({"n":4}));
    a.handle_poke(now, 4);
    assert!(
        a.poll_request(now).is_none(),
        "a poke at our cursor needs no pull"
    );
}

#[test]
fn lost_push_response_is_resolved_by_replay() {
    let now = Instant::now();
    let mut e = engine();
    let mut store = MemoryStore::new();
    let mut r = replica("a", now);
    r.mutate(now, "incr", json!({"key":"n"})).unwrap();
    let req = r.poll_request(now).unwrap();
    serve(&mut e, &mut store, &req); // applied, answer lost
    r.handle_request_failed(now, req.id);
    assert!(matches!(
        std::iter::from_fn(|| r.poll_event()).last(),
        Some(ReplicaEvent::RequestFailed {
            operation: Operation::Push,
            status: None
        })
    ));
    let (at, why) = r.poll_timeout().unwrap();
    assert_eq!(why, TimerReason::Retry);
    assert!(r.poll_request(now).is_none(), "backing off");
    r.handle_timeout(at);
    // The retry replays seq 1 and gets the original result; n stays 1.
    sync(&mut r, &mut e, &mut store, at);
    assert_eq!(state(&r), json!({"n":1}));
    assert!(r.is_settled());
}

#[test]
fn cursor_too_old_resets_from_snapshot_keeping_pending() {
    let now = Instant::now();
    let mut e = engine();
    let mut store = MemoryStore::new();
    let mut a = replica("a", now);
    for i in 0..6 {
        a.mutate(now, "put", json!({"key": format!("k{i}"), "value": i}))
            .unwrap();
    }
    sync(&mut a, &mut e, &mut store, now);
    e.trim("s", 5).unwrap();
    flush(&mut e, &mut store);
    let mut b = replica("b", now);
    b.handle_disconnected(now); // offline edit
    b.mutate(now, "put", json!({"key":"mine","value":true}))
        .unwrap();
    b.handle_connected(now);
    let ops = sync(&mut b, &mut e, &mut store, now);
    assert_eq!(
        ops,
        vec![
            Operation::Push,
            Operation::Pull,
            Operation::Snapshot,
            Operation::Pull
        ]
    );
    assert!(
        std::iter::from_fn(|| b.poll_event()).any(|ev| ev == ReplicaEvent::Reset { cursor: 7 })
    );
    assert_eq!(
        state(&b),
        json!({"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"mine":true})
    );
    assert_eq!(b.cursor(), 7);
}

#[test]
fn permanent_rejection_drops_the_mutation_and_its_effect() {
    let now = Instant::now();
    let mut e = engine();
    let mut store = MemoryStore::new();
    let app = app().with("local_only", |_, _| {
        Ok(vec![KvApp::put_change("x", json!(1))])
    });
    let mut r = Replica::new(app, ReplicaConfig::new("s", "a"), now);
    r.handle_connected(now);
    r.mutate(now, "local_only", json!({})).unwrap();
    r.mutate(now, "put", json!({"key":"y","value":2})).unwrap();
    assert_eq!(state(&r), json!({"x":1,"y":2}));
    sync(&mut r, &mut e, &mut store, now);
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    let rejected = events.iter().find_map(|ev| match ev {
        ReplicaEvent::Rejected { mutation, result } => {
            Some((mutation.name.clone(), result.code.clone()))
        }
        _ => None,
    });
    assert_eq!(
        rejected,
        Some(("local_only".into(), Some("invalid_mutation".into())))
    );
    assert_eq!(state(&r), json!({"y":2}));
}

#[test]
fn timers_request_timeout_backoff_growth_and_polling() {
    let t0 = Instant::now();
    let mut cfg = ReplicaConfig::new("s", "a");
    cfg.seed = 1;
    cfg.request_timeout = Duration::from_secs(5);
    cfg.poll_interval = Duration::from_secs(300);
    cfg.backoff_base = Duration::from_secs(1);
    cfg.backoff_max = Duration::from_secs(8);
    let mut r = Replica::new(app(), cfg, t0);
    assert!(r.poll_request(t0).is_none(), "disconnected: nothing sent");
    r.handle_connected(t0);
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..5 {
        let req = r.poll_request(now).expect("a pull");
        assert_eq!(req.operation(), Operation::Pull);
        let (at, why) = r.poll_timeout().unwrap();
        assert_eq!(
            (at - now, why),
            (Duration::from_secs(5), TimerReason::RequestTimeout)
        );
        r.handle_timeout(at);
        now = at;
        let (retry, why) = r.poll_timeout().unwrap();
        assert_eq!(why, TimerReason::Retry);
        delays.push(retry - now);
        r.handle_timeout(retry);
        now = retry;
    }
    for (n, d) in delays.iter().enumerate() {
        let full = Duration::from_secs(1 << n.min(3));
        assert!(*d >= full / 2 && *d <= full, "retry {n}: {d:?}");
    }
    // A success resets the backoff; then the slow poll is the only timer.
    let req = r.poll_request(now).unwrap();
    let ok = Response::ok(&json!({"changes": [], "has_more": false, "next_cursor": 0}));
    r.handle_response(now, req.id, ok.status, &ok.body);
    assert!(r.poll_request(now).is_none());
    let (at, why) = r.poll_timeout().unwrap();
    assert_eq!(why, TimerReason::Poll);
    r.handle_timeout(at);
    assert_eq!(r.poll_request(at).unwrap().operation(), Operation::Pull);
}

#[test]
fn stale_and_malformed_answers_are_harmless() {
    let now = Instant::now();
    let mut r = replica("a", now);
    let req = r.poll_request(now).unwrap();
    r.handle_response(now, RequestId(999), 200, b"{}"); // unknown id: ignored
    assert!(r.poll_request(now).is_none(), "still in flight");
    r.handle_response(now, req.id, 200, b"not json");
    assert!(matches!(
        std::iter::from_fn(|| r.poll_event()).last(),
        Some(ReplicaEvent::RequestFailed {
            status: Some(200),
            ..
        })
    ));
    // A page whose cursors do not continue ours is refused.
    let (at, _) = r.poll_timeout().unwrap();
    r.handle_timeout(at);
    let req = r.poll_request(at).unwrap();
    let bad = json!({"changes":[{"cursor":5,"scope":"s","time":"2026-01-01T00:00:00Z","data":{}}],"has_more":false,"next_cursor":5});
    r.handle_response(at, req.id, 200, bad.to_string().as_bytes());
    assert_eq!(r.cursor(), 0);
}

#[test]
fn a_resumed_replica_pushes_its_saved_queue_once() {
    let now = Instant::now();
    let mut e = engine();
    let mut store = MemoryStore::new();
    let mut r = replica("a", now);
    r.mutate(now, "incr", json!({"key":"n"})).unwrap();
    r.mutate(now, "incr", json!({"key":"n"})).unwrap();
    let req = r.poll_request(now).unwrap();
    serve(&mut e, &mut store, &req); // applied; the app stops before the answer
    let saved: Vec<_> = r.pending().cloned().collect();
    let confirmed = r.confirmed_state().clone();
    let mut r = Replica::resume(
        app(),
        ReplicaConfig::new("s", "a"),
        now,
        confirmed,
        r.cursor(),
        saved,
    );
    assert_eq!(state(&r), json!({"n":2}));
    r.handle_connected(now);
    assert_eq!(r.mutate(now, "incr", json!({"key":"n"})).unwrap(), 3);
    sync(&mut r, &mut e, &mut store, now);
    assert_eq!(state(&r), json!({"n":3}));
    assert!(r.is_settled());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn answer() -> impl Strategy<Value = (u16, Vec<u8>)> {
        let status = prop_oneof![Just(200u16), Just(410), Just(500), Just(400), any::<u16>()];
        let body = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            (any::<u64>(), any::<bool>(), any::<u64>(), proptest::option::of(any::<u64>())).prop_map(|(c, more, next, seq)| {
                json!({"changes":[{"cursor":c,"scope":"s","time":"2026-01-01T00:00:00Z","data":{"op":"put","key":"k","value":c}}],
                       "has_more":more,"next_cursor":next,"client_seq":seq}).to_string().into_bytes()
            }),
            (any::<u64>(), proptest::option::of(any::<u64>())).prop_map(|(c, seq)| {
                json!({"data":{"k":1},"cursor":c,"client_seq":seq}).to_string().into_bytes()
            }),
            (any::<bool>(), any::<u64>(), proptest::option::of("[a-z_]{0,16}")).prop_map(|(ok, c, code)| {
                json!({"results":[{"ok":ok,"cursor":c,"code":code}]}).to_string().into_bytes()
            }),
        ];
        (status, body)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Whatever a server answers, the replica neither panics nor moves its
        /// cursor back except through a snapshot reset.
        #[test]
        fn any_answer_is_survived(answers in proptest::collection::vec((answer(), 0u64..3), 1..20)) {
            let mut now = Instant::now();
            let mut r = replica("a", now);
            r.mutate(now, "put", json!({"key":"x","value":1})).unwrap();
            for ((status, body), action) in answers {
                now += Duration::from_secs(1);
                r.handle_timeout(now);
                if action == 1 {
                    r.handle_poke(now, u64::MAX);
                }
                if let Some(req) = r.poll_request(now) {
                    let before = r.cursor();
                    r.handle_response(now, req.id, status, &body);
                    let reset = std::iter::from_fn(|| r.poll_event()).any(|e| matches!(e, ReplicaEvent::Reset { .. }));
                    prop_assert!(reset || r.cursor() >= before);
                }
            }
        }
    }
}

/// A poke that arrives while a pull is out, for a commit the pull was
/// answered without (the server read before it committed), is not lost
/// with the answer: the replica pulls again instead of waiting for its
/// poll timer.
#[test]
fn a_poke_during_a_pull_answered_from_before_its_commit_pulls_again() {
    let now = Instant::now();
    let mut e = engine();
    let mut store = MemoryStore::new();
    let mut a = replica("a", now);
    let mut b = replica("b", now);
    b.mutate(now, "incr", json!({"key":"n"})).unwrap();
    sync(&mut b, &mut e, &mut store, now);
    sync(&mut a, &mut e, &mut store, now);
    assert_eq!(a.cursor(), 1);

    a.handle_poke(now, 1);
    assert_eq!(a.poll_request(now), None, "nothing new");
    // A poll: the pull is answered from cursor 1...
    let poll = now + Duration::from_secs(3600);
    a.handle_timeout(poll);
    let pull = a.poll_request(poll).expect("a pull");
    assert_eq!(pull.operation(), Operation::Pull);
    let answered_before = serve(&mut e, &mut store, &pull);
    // ...then b commits cursor 2 and its poke reaches `a` before the answer.
    b.mutate(poll, "incr", json!({"key":"n"})).unwrap();
    sync(&mut b, &mut e, &mut store, poll);
    a.handle_poke(poll, 2);
    a.handle_response(poll, pull.id, answered_before.status, &answered_before.body);
    assert_eq!(a.cursor(), 1);
    assert_eq!(
        sync(&mut a, &mut e, &mut store, poll),
        vec![Operation::Pull],
        "pulls again at once"
    );
    assert_eq!(a.cursor(), 2);
    assert_eq!(state(&a), json!({"n":2}));
}
