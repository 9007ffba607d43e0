//! Presence, as transcripts: `join`/`leave` reach the sessions that
//! subscribed with `"presence":true`, a `presence` query lists a topic's
//! subscribers, and both need the right to subscribe to the topic.

mod support;

use live_core::{AuthorizeRequest, Authorizer, Decision, Event, SessionId};
use support::{Harness, error_code};

/// Users are the authenticated names, except `anon` who shows `null`;
/// `mallory` may not subscribe to `room`.
struct Names;
impl Authorizer<String> for Names {
    fn authorize_topic(&mut self, r: &AuthorizeRequest<'_, String>) -> Decision {
        if r.auth == "mallory" && r.topic == "room" {
            Decision::Deny
        } else {
            Decision::Allow
        }
    }
    fn presence_user(&mut self, auth: &String) -> Option<String> {
        (auth != "anon").then(|| auth.clone())
    }
}

fn watch(h: &mut Harness, id: SessionId, topic: &str) {
    h.text(
        id,
        &format!(r#"{{"topic":"subscribe","data":{{"topic":"{topic}","presence":true}}}}"#),
    );
}

fn change(to: &str, kind: &str, topic: &str, id: SessionId, user: &str) -> String {
    format!(
        r#"{to} <- {{"topic":"{kind}","data":{{"topic":"{topic}","session":"{id}","user":{user}}}}}"#
    )
}

fn query(topic: &str) -> String {
    format!(r#"{{"topic":"presence","data":{{"topic":"{topic}"}}}}"#)
}

#[test]
fn joins_and_leaves_reach_the_watchers_only() {
    let mut h = Harness::new();
    h.hub.set_authorizer(Names);
    let w = h.open("w");
    let plain = h.open("plain");
    watch(&mut h, w, "room");
    h.subscribe(plain, "room");
    let anon = h.open("anon");
    h.subscribe(anon, "room");
    h.subscribe(anon, "elsewhere");
    h.unsubscribe(plain, "room");
    h.hub.handle_transport_closed(h.now, anon);
    assert_eq!(
        h.drain(),
        [
            change("w", "join", "room", plain, r#""plain""#),
            change("w", "join", "room", anon, "null"),
            change("w", "leave", "room", plain, r#""plain""#),
            change("w", "leave", "room", anon, "null"),
        ]
    );
    assert_eq!(h.hub.metrics().presence_watchers, 1);
    // Leaving stops the announcements.
    h.unsubscribe(w, "room");
    h.subscribe(plain, "room");
    assert_eq!(h.drain(), Vec::<String>::new());
    assert_eq!(h.hub.metrics().presence_watchers, 0);
}

#[test]
fn a_subscriber_may_turn_presence_on_later() {
    let mut h = Harness::new();
    let w = h.open("w");
    let b = h.open("b");
    h.subscribe(w, "room");
    watch(&mut h, w, "room");
    h.subscribe(b, "room");
    assert_eq!(h.drain(), [change("w", "join", "room", b, "null")]);
}

#[test]
fn a_query_lists_every_subscriber_with_its_user() {
    let mut h = Harness::new();
    h.hub.set_authorizer(Names);
    let a = h.open("a");
    let anon = h.open("anon");
    let q = h.open("q");
    h.subscribe(a, "room");
    h.subscribe(anon, "room");
    // Not subscribed, but allowed to subscribe: answered.
    h.text(q, &query("room"));
    h.text(q, &query("empty"));
    assert_eq!(
        h.drain(),
        [
            format!(
                r#"q <- {{"topic":"presence","data":{{"topic":"room","clients":[{{"session":"{a}","user":"a"}},{{"session":"{anon}","user":null}}]}}}}"#
            ),
            r#"q <- {"topic":"presence","data":{"topic":"empty","clients":[]}}"#.to_owned(),
        ]
    );
    // The query subscribes nobody.
    assert_eq!(h.hub.subscriber_count("room"), 2);
}

#[test]
fn presence_needs_the_right_to_subscribe() {
    let mut h = Harness::new();
    h.hub.set_authorizer(Names);
    let a = h.open("a");
    h.subscribe(a, "room");
    let m = h.open("mallory");
    h.text(m, &query("room"));
    watch(&mut h, m, "room");
    let lines = h.drain();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert!(line.starts_with("mallory <- "), "{line}");
        assert_eq!(error_code(line).as_deref(), Some("forbidden"));
    }
    assert_eq!(h.hub.metrics().presence_watchers, 0);
}

#[test]
fn a_sync_topic_query_is_asked_like_its_subscribe() {
    let mut h = Harness::new();
    let a = h.open("a");
    h.text(a, &query("sync:doc"));
    let events = h.events();
    let Some(Event::Authorize {
        ticket,
        command,
        topic,
        ..
    }) = events.into_iter().next()
    else {
        panic!("expected an authorization question");
    };
    assert_eq!(
        (command, topic.as_str()),
        (live_core::Command::Subscribe, "sync:doc")
    );
    h.hub.handle_authorize(h.now, ticket, false);
    let lines = h.drain();
    assert_eq!(error_code(&lines[0]).as_deref(), Some("forbidden"));
    h.text(a, &query("sync:doc"));
    let ticket = match h.events().into_iter().next() {
        Some(Event::Authorize { ticket, .. }) => ticket,
        other => panic!("{other:?}"),
    };
    h.hub.handle_authorize(h.now, ticket, true);
    assert_eq!(
        h.drain(),
        [r#"a <- {"topic":"presence","data":{"topic":"sync:doc","clients":[]}}"#]
    );
}

#[test]
fn a_malformed_presence_flag_or_query_is_an_error_frame() {
    let mut h = Harness::new();
    let a = h.open("a");
    h.text(
        a,
        r#"{"topic":"subscribe","data":{"topic":"room","presence":"yes"}}"#,
    );
    h.text(a, r#"{"topic":"presence","data":{}}"#);
    h.text(a, r#"{"topic":"presence","data":5}"#);
    let codes: Vec<_> = h.drain().iter().map(|l| error_code(l)).collect();
    assert_eq!(
        codes,
        [
            Some("bad_data".to_owned()),
            Some("bad_topic".to_owned()),
            Some("bad_data".to_owned())
        ]
    );
}

#[test]
fn watchers_closed_as_slow_while_announcing_each_others_leave_close_once() {
    // A leaves t1 (closed by the server); B, watching t1 with a full queue,
    // is closed as slow; B's leave of t2 goes to the watchers of t2, where A
    // is one, with a full queue too. A is closed exactly once and hears
    // nothing of its own closing.
    let mut config = live_core::HubConfig::default();
    config.limits.max_queued_messages = 3;
    let mut h = Harness::with_config(config);
    let a = h.open("a");
    let b = h.open("b");
    h.subscribe(a, "t1");
    watch(&mut h, a, "t2");
    watch(&mut h, b, "t1");
    h.subscribe(b, "t2"); // a hears the join
    h.subscribe(b, "t3");
    h.publish(a, "t1", "1");
    h.publish(a, "t1", "2");
    h.publish(a, "t3", "3");
    assert_eq!(h.drain().len(), 6, "both queues full, nobody closed yet");
    h.hub.close(a, 4100, "bye").unwrap();
    let closed = h.closed();
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert!(!h.hub.contains(a) && !h.hub.contains(b));
    assert_eq!(h.hub.metrics().presence_watchers, 0);
    assert_eq!(h.hub.metrics().sessions, 0);
}
