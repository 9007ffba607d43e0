//! Token-bound sessions in the server core: claims decide subscriptions and
//! sync scopes, a credential's expiry is a deadline of the core (closing
//! with 4001), an in-band refresh replaces the claims and ends the
//! subscriptions they no longer allow, and each session's message rate is
//! a token bucket. Time only moves when a test moves it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use live_core::{Frame, OutFrame, SessionId};
use serde_json::{Value, json};
use server_core::claims::{Access, Claims, ClaimsPolicy};
use server_core::{
    Body, CoreConfig, HttpSync, Output, RateLimit, RefreshRefused, ServerCore, TimerReason,
};
use sync_core::{KvApp, Recovered, Timestamp};

/// Wall time at the test's start: 2026-11-21, in seconds.
const WALL_SECS: u64 = 1_795_328_895;

type Core = ServerCore<Access, ClaimsPolicy, KvApp>;

fn core(config: CoreConfig) -> (Core, Instant) {
    let now = Instant::now();
    let mut config = config;
    config.hub.timers.ping_interval = None;
    config.hub.timers.idle_timeout = None;
    let core = ServerCore::new(
        now,
        Timestamp::from_millis(WALL_SECS * 1000),
        config,
        ClaimsPolicy,
        KvApp::new(),
        Recovered::default(),
    )
    .unwrap();
    (core, now)
}

fn refreshing() -> CoreConfig {
    let mut c = CoreConfig::with_seed(3);
    c.token_refresh = true;
    c
}

fn token(ttl: u64, scopes: &[&str], topics: &[&str]) -> Access {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
    Access::Token(std::sync::Arc::new(Claims {
        sub: "alice".into(),
        exp: WALL_SECS + ttl,
        scopes: v(scopes),
        topics: v(topics),
        publish: vec![],
    }))
}

fn send(core: &mut Core, now: Instant, id: SessionId, v: Value) {
    core.handle_frame(now, id, Frame::Text(Bytes::from(v.to_string())));
}

/// Every output rendered: frames as their JSON, closes as `close CODE`.
fn drain(core: &mut Core) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(o) = core.poll_output() {
        match o {
            Output::Send {
                frame: OutFrame::Text(b),
                ..
            } => out.push(serde_json::from_slice(&b).unwrap()),
            Output::Close { code, reason, .. } => {
                out.push(json!({"close": code, "reason": reason}))
            }
            Output::Closed { .. } => out.push(json!("closed")),
            Output::Refresh { token, .. } => out.push(json!({"verify": token})),
            Output::Answer { response, .. } => {
                out.push(json!({"status": response.status}));
            }
            _ => {}
        }
    }
    out
}

fn subscribe(topic: &str) -> Value {
    json!({"topic":"subscribe","data":{"topic":topic}})
}

#[test]
fn subscriptions_and_sync_scopes_follow_the_claims() {
    let (mut core, now) = core(refreshing());
    let id = core.handle_open(now, token(60, &["user:{sub}"], &["chat:*"]));
    for topic in ["chat:a", "news", "sync:user:alice", "sync:user:bob"] {
        send(&mut core, now, id, subscribe(topic));
    }
    let out = drain(&mut core);
    let refused: Vec<&str> = out
        .iter()
        .filter(|v| v["data"]["code"] == "forbidden")
        .map(|v| v["data"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(refused.len(), 2, "{out:?}");
    assert!(refused[0].contains("news") && refused[1].contains("sync:user:bob"));
    let topics: Vec<&str> = core.hub().topics_of(id).unwrap().collect();
    assert_eq!(topics, ["chat:a", "sync:user:alice"]);

    let user = token(60, &["user:{sub}"], &[]);
    for (scope, status) in [("user:alice", 200), ("user:bob", 403)] {
        let q = format!("scope={scope}");
        let pull = HttpSync {
            method: "GET",
            path: "/pull",
            query: &q,
            body: Body::Read(b""),
        };
        core.handle_http_sync(now, &user, pull);
        assert_eq!(drain(&mut core), [json!({ "status": status })], "{scope}");
    }
}

#[test]
fn an_unrefreshed_token_closes_its_session_at_expiry_with_4001() {
    let (mut core, now) = core(refreshing());
    let id = core.handle_open(now, token(30, &[], &["t"]));
    let other = core.handle_open(now, Access::Anonymous);
    drain(&mut core);
    let (at, why) = core.poll_timeout().expect("the expiry is a deadline");
    assert_eq!(why, TimerReason::TokenExpiry);
    assert_eq!(at, now + Duration::from_secs(30));
    core.handle_timeout(at - Duration::from_millis(1));
    assert!(drain(&mut core).is_empty());
    core.handle_timeout(at);
    let out = drain(&mut core);
    assert_eq!(out[0]["close"], 4001, "{out:?}");
    assert!(out[0]["reason"].as_str().unwrap().contains("expired"));
    assert!(!core.hub().contains(id));
    assert!(core.hub().contains(other), "nobody else is touched");
    assert_eq!(core.poll_timeout(), None);
    assert_eq!(core.metrics().guard.tokens_expired, 1);
}

#[test]
fn a_session_opened_with_an_expired_token_is_closed_at_once() {
    let (mut core, now) = core(refreshing());
    let mut t = token(0, &[], &[]);
    if let Access::Token(c) = &mut t {
        std::sync::Arc::make_mut(c).exp = WALL_SECS - 5;
    }
    let id = core.handle_open(now, t);
    let out = drain(&mut core);
    assert_eq!(out[0]["close"], 4001, "{out:?}");
    assert!(!core.hub().contains(id));
}

#[test]
fn a_refresh_moves_the_expiry_and_ends_subscriptions_no_longer_allowed() {
    let (mut core, now) = core(refreshing());
    let id = core.handle_open(now, token(30, &["a", "b"], &["x", "y"]));
    for topic in ["x", "y", "sync:a", "sync:b"] {
        send(&mut core, now, id, subscribe(topic));
    }
    drain(&mut core);

    let later = now + Duration::from_secs(20);
    send(
        &mut core,
        later,
        id,
        json!({"topic":"refresh","data":{"token":"T2"}}),
    );
    assert_eq!(drain(&mut core), [json!({"verify": "T2"})]);
    core.handle_refresh(later, id, Ok(token(90, &["a"], &["x"])));
    let out = drain(&mut core);
    let ended: Vec<&str> = out
        .iter()
        .filter(|v| v["data"]["code"] == "forbidden")
        .map(|v| v["data"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(ended.len(), 2, "{out:?}");
    assert!(
        ended[0].contains("sync:b") && ended[1].contains(" y "),
        "{ended:?}"
    );
    assert_eq!(
        out.last().unwrap(),
        &json!({"topic":"refresh","data":{"ok":true}})
    );
    let topics: Vec<&str> = core.hub().topics_of(id).unwrap().collect();
    assert_eq!(topics, ["sync:a", "x"]);

    // The old expiry is gone; the new one is 90 s after the start.
    let (at, _) = core.poll_timeout().unwrap();
    assert_eq!(at, now + Duration::from_secs(90));
    core.handle_timeout(now + Duration::from_secs(31));
    assert!(
        core.hub().contains(id),
        "refreshed: still open past the old expiry"
    );
    assert_eq!(core.metrics().guard.refreshes, 1);
}

#[test]
fn a_refused_refresh_keeps_the_old_token_and_says_why() {
    let (mut core, now) = core(refreshing());
    let id = core.handle_open(now, token(30, &[], &["x"]));
    send(&mut core, now, id, subscribe("x"));
    drain(&mut core);
    for (refusal, code) in [
        (
            RefreshRefused::Unauthorized("bad token signature".into()),
            "unauthorized",
        ),
        (
            RefreshRefused::Expired("token expired".into()),
            "token_expired",
        ),
    ] {
        core.handle_refresh(now, id, Err(refusal));
        let out = drain(&mut core);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0]["topic"], "error");
        assert_eq!(out[0]["data"]["code"], code);
    }
    assert_eq!(core.hub().topics_of(id).unwrap().count(), 1);
    let (at, _) = core.poll_timeout().unwrap();
    assert_eq!(at, now + Duration::from_secs(30));
    // A refresh without a token string is a bad request, not a verification.
    send(
        &mut core,
        now,
        id,
        json!({"topic":"refresh","data":{"token":5}}),
    );
    let out = drain(&mut core);
    assert_eq!(out[0]["data"]["code"], "bad_data", "{out:?}");
}

#[test]
fn refresh_is_an_application_message_unless_configured() {
    let (mut core, now) = core(CoreConfig::with_seed(3));
    let id = core.handle_open(now, Access::Anonymous);
    send(
        &mut core,
        now,
        id,
        json!({"topic":"refresh","data":{"token":"T"}}),
    );
    let mut saw_message = false;
    while let Some(o) = core.poll_output() {
        saw_message |= matches!(o, Output::Message { ref topic, .. } if topic == "refresh");
        assert!(!matches!(o, Output::Refresh { .. }));
    }
    assert!(saw_message);
}

#[test]
fn a_flood_gets_one_error_frame_then_a_close_and_others_are_untouched() {
    let mut config = CoreConfig::with_seed(3);
    config.message_rate = Some(RateLimit {
        per_second: 10,
        burst: 5,
    });
    let (mut core, now) = core(config);
    let flooder = core.handle_open(now, Access::Anonymous);
    let calm = core.handle_open(now, Access::Anonymous);
    // A subscribe storm: the burst passes, then one rate_limited frame, then
    // the close once another burst's worth was dropped.
    for i in 0..20 {
        send(&mut core, now, flooder, subscribe(&format!("t{i}")));
    }
    let out = drain(&mut core);
    let limited: Vec<&Value> = out
        .iter()
        .filter(|v| v["data"]["code"] == "rate_limited")
        .collect();
    assert_eq!(limited.len(), 1, "{out:?}");
    assert!(out.iter().any(|v| v["close"] == 4029), "{out:?}");
    assert!(!core.hub().contains(flooder));
    assert_eq!(core.hub().subscriber_count("t4"), 0);
    let m = core.metrics().guard;
    assert_eq!((m.sessions_limited, m.messages_limited), (1, 6));

    // The calm session's allowance is its own, refilled with time.
    for i in 0..5 {
        send(&mut core, now, calm, subscribe(&format!("c{i}")));
    }
    send(
        &mut core,
        now + Duration::from_millis(100),
        calm,
        subscribe("c5"),
    );
    assert!(drain(&mut core).iter().all(|v| v["topic"] != "error"));
    assert_eq!(core.hub().topics_of(calm).unwrap().count(), 6);
}

#[test]
fn a_session_that_slows_down_is_forgiven_and_told_again_on_its_next_flood() {
    let mut config = CoreConfig::with_seed(3);
    config.message_rate = Some(RateLimit {
        per_second: 10,
        burst: 3,
    });
    let (mut core, now) = core(config);
    let id = core.handle_open(now, Access::Anonymous);
    let errors = |out: &[Value]| out.iter().filter(|v| v["topic"] == "error").count();
    // The burst, one over it (told), one more (dropped silently).
    for i in 0..5 {
        send(&mut core, now, id, subscribe(&format!("a{i}")));
    }
    assert_eq!(errors(&drain(&mut core)), 1);
    // 100 ms at 10 per second: one message passes, which forgives the drops.
    let later = now + Duration::from_millis(100);
    send(&mut core, later, id, subscribe("b0"));
    // A second flood is told again rather than closed, since the first
    // run of drops ended.
    send(&mut core, later, id, subscribe("b1"));
    let out = drain(&mut core);
    assert_eq!(errors(&out), 1, "{out:?}");
    assert!(out.iter().all(|v| v.get("close").is_none()), "{out:?}");
    assert!(core.hub().contains(id));
    // A long pause refills only up to the burst.
    let much_later = later + Duration::from_secs(60);
    for i in 0..4 {
        send(&mut core, much_later, id, subscribe(&format!("c{i}")));
    }
    assert_eq!(errors(&drain(&mut core)), 1);
    assert_eq!(core.hub().topics_of(id).unwrap().count(), 3 + 1 + 3);
}

#[test]
fn a_session_from_this_machine_is_not_rate_limited() {
    let mut config = CoreConfig::with_seed(3);
    config.message_rate = Some(RateLimit {
        per_second: 10,
        burst: 5,
    });
    let (mut core, now) = core(config);
    let local = core.handle_open_local(now, Access::Anonymous);
    for i in 0..50 {
        send(&mut core, now, local, subscribe(&format!("t{i}")));
    }
    assert!(drain(&mut core).iter().all(|v| v["topic"] != "error"));
    assert_eq!(core.hub().topics_of(local).unwrap().count(), 50);
    assert_eq!(core.metrics().guard.messages_limited, 0);
}

#[test]
fn messages_after_a_refresh_wait_for_its_answer() {
    let (mut core, now) = core(refreshing());
    let id = core.handle_open(now, token(30, &[], &["x"]));
    drain(&mut core);
    send(
        &mut core,
        now,
        id,
        json!({"topic":"refresh","data":{"token":"bad"}}),
    );
    send(&mut core, now, id, subscribe("nope"));
    send(
        &mut core,
        now,
        id,
        json!({"topic":"refresh","data":{"token":"good"}}),
    );
    send(&mut core, now, id, subscribe("x"));
    // Only the first refresh is out; the rest wait.
    assert_eq!(drain(&mut core), [json!({"verify": "bad"})]);
    core.handle_refresh(
        now,
        id,
        Err(RefreshRefused::Unauthorized("bad token signature".into())),
    );
    let out = drain(&mut core);
    assert_eq!(out[0]["data"]["code"], "unauthorized", "{out:?}");
    assert_eq!(
        out[1]["data"]["code"], "forbidden",
        "the subscribe, after: {out:?}"
    );
    assert_eq!(out[2], json!({"verify": "good"}));
    assert_eq!(
        out.len(),
        3,
        "the last subscribe waits for the second refresh"
    );
    core.handle_refresh(now, id, Ok(token(60, &[], &["x"])));
    let out = drain(&mut core);
    assert_eq!(out, [json!({"topic":"refresh","data":{"ok":true}})]);
    assert_eq!(core.hub().topics_of(id).unwrap().collect::<Vec<_>>(), ["x"]);
}
