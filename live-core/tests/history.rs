//! History, offsets and recovery, as transcripts: publications on topics with
//! history carry dense offsets; a subscribe naming `since` gets the
//! `subscribed` reply, what it missed in order, then live publications.

mod support;

use std::time::Duration;

use live_core::{
    AuthorizeRequest, Authorizer, Decision, Event, HistoryLimits, HistoryRule, HubConfig,
    SessionId, TimerReason,
};
use support::{Harness, error_code, since, subscribed};

fn config(size: usize, ttl: Option<Duration>) -> HubConfig {
    let mut c = HubConfig::default();
    c.history = vec![HistoryRule::new("chat:*", HistoryLimits::new(size, ttl))];
    c
}

fn epoch(h: &Harness, topic: &str) -> String {
    h.hub.history_position(topic).expect("history").0.to_owned()
}

#[test]
fn offsets_are_dense_per_topic_and_topics_without_history_are_unchanged() {
    let mut h = Harness::with_config(config(10, None));
    let a = h.open("a");
    h.subscribe(a, "chat:1");
    h.subscribe(a, "chat:2");
    h.subscribe(a, "news");
    h.publish(a, "chat:1", "1");
    h.publish(a, "chat:2", "1");
    h.publish(a, "chat:1", "2");
    h.publish(a, "news", "3");
    h.hub.publish("chat:1", b"\"srv\"").unwrap();
    assert_eq!(
        h.drain(),
        [
            r#"a <- {"topic":"chat:1","data":1,"offset":1}"#,
            r#"a <- {"topic":"chat:2","data":1,"offset":1}"#,
            r#"a <- {"topic":"chat:1","data":2,"offset":2}"#,
            r#"a <- {"topic":"news","data":3}"#,
            r#"a <- {"topic":"chat:1","data":"srv","offset":3}"#,
        ]
    );
    assert_ne!(epoch(&h, "chat:1"), epoch(&h, "chat:2"));
    assert_eq!(h.hub.history_position("news"), None);
}

#[test]
fn history_true_replies_with_the_position_and_a_plain_subscribe_gets_no_reply() {
    let mut h = Harness::with_config(config(10, None));
    let a = h.open("a");
    let b = h.open("b");
    h.text(
        a,
        r#"{"topic":"subscribe","data":{"topic":"chat:x","history":true}}"#,
    );
    let e = epoch(&h, "chat:x");
    assert_eq!(h.drain(), [subscribed("a", "chat:x", &e, 0, false)]);
    h.publish(a, "chat:x", "1");
    h.subscribe(b, "chat:x");
    h.publish(a, "chat:x", "2");
    assert_eq!(
        h.drain(),
        [
            r#"a <- {"topic":"chat:x","data":1,"offset":1}"#,
            r#"a <- {"topic":"chat:x","data":2,"offset":2}"#,
            r#"b <- {"topic":"chat:x","data":2,"offset":2}"#,
        ]
    );
    // A topic without history answers an empty epoch.
    h.text(
        b,
        r#"{"topic":"subscribe","data":{"topic":"news","history":true}}"#,
    );
    assert_eq!(h.drain(), [subscribed("b", "news", "", 0, false)]);
}

#[test]
fn recovery_replays_what_was_missed_in_order_then_live_without_duplicates() {
    let mut h = Harness::with_config(config(10, None));
    let a = h.open("a");
    let p = h.open("p");
    h.subscribe(a, "chat:x");
    for i in 1..=3 {
        h.publish(p, "chat:x", &i.to_string());
    }
    let e = epoch(&h, "chat:x");
    h.drain_flushed();
    h.hub.handle_transport_closed(h.now, a);
    h.events();
    h.publish(p, "chat:x", "4");
    h.publish(p, "chat:x", "5");
    let a2 = h.open("a2");
    h.text(a2, &since("chat:x", &e, 3));
    h.publish(p, "chat:x", "6");
    assert_eq!(
        h.drain(),
        [
            subscribed("a2", "chat:x", &e, 5, true),
            r#"a2 <- {"topic":"chat:x","data":4,"offset":4}"#.to_owned(),
            r#"a2 <- {"topic":"chat:x","data":5,"offset":5}"#.to_owned(),
            r#"a2 <- {"topic":"chat:x","data":6,"offset":6}"#.to_owned(),
        ]
    );
    assert_eq!(h.hub.metrics().recoveries, 1);
    // At the latest position: recovered, nothing to replay.
    let a3 = h.open("a3");
    h.text(a3, &since("chat:x", &e, 6));
    assert_eq!(h.drain(), [subscribed("a3", "chat:x", &e, 6, true)]);
}

#[test]
fn a_wrong_epoch_or_a_future_offset_is_not_recovered_and_nothing_old_is_sent() {
    let mut h = Harness::with_config(config(10, None));
    let p = h.open("p");
    h.publish(p, "chat:x", "1");
    h.publish(p, "chat:x", "2");
    let e = epoch(&h, "chat:x");
    let a = h.open("a");
    h.text(a, &since("chat:x", "not-the-epoch", 0));
    let b = h.open("b");
    h.text(b, &since("chat:x", &e, 9));
    h.publish(p, "chat:x", "3");
    assert_eq!(
        h.drain(),
        [
            subscribed("a", "chat:x", &e, 2, false),
            subscribed("b", "chat:x", &e, 2, false),
            r#"a <- {"topic":"chat:x","data":3,"offset":3}"#.to_owned(),
            r#"b <- {"topic":"chat:x","data":3,"offset":3}"#.to_owned(),
        ]
    );
    assert_eq!(h.hub.metrics().recoveries_failed, 2);
}

#[test]
fn a_trimmed_position_is_not_recovered() {
    let mut h = Harness::with_config(config(2, None));
    let p = h.open("p");
    for i in 1..=4 {
        h.publish(p, "chat:x", &i.to_string());
    }
    let e = epoch(&h, "chat:x");
    let a = h.open("a");
    // Offsets 3 and 4 are kept: a client at 1 missed 2, which is gone.
    h.text(a, &since("chat:x", &e, 1));
    let b = h.open("b");
    h.text(b, &since("chat:x", &e, 2));
    assert_eq!(
        h.drain(),
        [
            subscribed("a", "chat:x", &e, 4, false),
            subscribed("b", "chat:x", &e, 4, true),
            r#"b <- {"topic":"chat:x","data":3,"offset":3}"#.to_owned(),
            r#"b <- {"topic":"chat:x","data":4,"offset":4}"#.to_owned(),
        ]
    );
    let m = h.hub.metrics();
    assert_eq!((m.history_topics, m.history_entries), (1, 2));
    assert_eq!(
        m.history_bytes,
        r#"{"topic":"chat:x","data":3,"offset":3}"#.len() * 2
    );
}

#[test]
fn entries_expire_through_the_hub_timer_and_an_expired_position_is_not_recovered() {
    let ttl = Duration::from_secs(30);
    let mut c = config(10, Some(ttl));
    c.timers.ping_interval = None;
    c.timers.idle_timeout = None;
    let mut h = Harness::with_config(c);
    let p = h.open("p");
    h.subscribe(p, "chat:x");
    h.publish(p, "chat:x", "1");
    h.advance(Duration::from_secs(10));
    h.publish(p, "chat:x", "2");
    let e = epoch(&h, "chat:x");
    h.drain_flushed();
    let (at, why) = h.hub.poll_timeout().unwrap();
    assert_eq!((at - h.start, why), (ttl, TimerReason::HistoryExpiry));
    assert_eq!(h.next_timeout(), Some(Duration::from_secs(20)));
    assert_eq!(h.hub.metrics().history_entries, 1);
    let a = h.open("a");
    h.text(a, &since("chat:x", &e, 0));
    let b = h.open("b");
    h.text(b, &since("chat:x", &e, 1));
    assert_eq!(
        h.drain(),
        [
            subscribed("a", "chat:x", &e, 2, false),
            subscribed("b", "chat:x", &e, 2, true),
            r#"b <- {"topic":"chat:x","data":2,"offset":2}"#.to_owned(),
        ]
    );
    h.next_timeout();
    let m = h.hub.metrics();
    assert_eq!((m.history_entries, m.history_bytes), (0, 0));
    // Subscribers remain: the position survives an empty ring.
    assert_eq!(h.hub.history_position("chat:x"), Some((e.as_str(), 2)));
    assert_eq!(h.hub.poll_timeout(), None);
}

#[test]
fn an_empty_history_nobody_listens_to_is_dropped_and_goes_on_in_its_epoch() {
    let ttl = Duration::from_secs(5);
    let mut c = config(10, Some(ttl));
    c.timers.ping_interval = None;
    c.timers.idle_timeout = None;
    let mut h = Harness::with_config(c);
    let p = h.open("p");
    h.publish(p, "chat:x", "1");
    let e = epoch(&h, "chat:x");
    h.advance(ttl);
    assert_eq!(h.hub.history_position("chat:x"), None);
    assert_eq!(h.hub.metrics().history_topics, 0);
    // Only the position was kept: a client at 1 missed nothing, one at 0
    // missed what expired.
    let a = h.open("a");
    h.text(a, &since("chat:x", &e, 1));
    let b = h.open("b");
    h.text(b, &since("chat:x", &e, 0));
    assert_eq!(
        h.drain(),
        [
            subscribed("a", "chat:x", &e, 1, true),
            subscribed("b", "chat:x", &e, 1, false)
        ]
    );
    h.publish(p, "chat:x", "2");
    assert_eq!(
        h.drain(),
        [
            r#"a <- {"topic":"chat:x","data":2,"offset":2}"#,
            r#"b <- {"topic":"chat:x","data":2,"offset":2}"#,
        ]
    );
}

#[test]
fn a_client_that_leaves_a_quiet_topic_is_recovered_when_it_comes_back() {
    let mut h = Harness::with_config(config(10, None));
    let a = h.open("a");
    h.text(
        a,
        r#"{"topic":"subscribe","data":{"topic":"chat:q","history":true}}"#,
    );
    let e = epoch(&h, "chat:q");
    assert_eq!(h.drain(), [subscribed("a", "chat:q", &e, 0, false)]);
    h.unsubscribe(a, "chat:q");
    // Nobody listens and nothing was published: the ring is gone ...
    assert_eq!(h.hub.history_position("chat:q"), None);
    // ... but not the position.
    h.text(a, &since("chat:q", &e, 0));
    assert_eq!(h.drain(), [subscribed("a", "chat:q", &e, 0, true)]);
}

#[test]
fn beyond_the_most_topics_the_least_recent_ring_nobody_listens_to_is_dropped() {
    let mut c = config(10, None);
    c.limits.max_history_topics = 2;
    let mut h = Harness::with_config(c);
    let p = h.open("p");
    let a = h.open("a");
    h.subscribe(a, "chat:1");
    h.publish(p, "chat:1", "1");
    h.publish(p, "chat:2", "1");
    h.publish(p, "chat:2", "2");
    let e2 = epoch(&h, "chat:2");
    h.drain();
    // A third topic: chat:1 is older but listened to, so chat:2 goes.
    h.publish(p, "chat:3", "1");
    assert_eq!(h.hub.metrics().history_topics, 2);
    assert_eq!(h.hub.metrics().history_topics_dropped, 1);
    assert_eq!(h.hub.history_position("chat:2"), None);
    assert!(h.hub.history_position("chat:1").is_some());
    // chat:2's numbering goes on; its entries are gone.
    let b = h.open("b");
    h.text(b, &since("chat:2", &e2, 1));
    h.drain();
    h.publish(p, "chat:2", "3");
    assert_eq!(h.hub.history_position("chat:2"), Some((e2.as_str(), 3)));
    assert_eq!(h.hub.metrics().history_topics, 2, "chat:3 made room");
}

#[test]
fn malformed_since_is_bad_data_and_subscribes_nothing() {
    let mut h = Harness::with_config(config(10, None));
    let a = h.open("a");
    for bad in [
        r#"{"topic":"subscribe","data":{"topic":"chat:x","since":{"epoch":"e","offset":-1}}}"#,
        r#"{"topic":"subscribe","data":{"topic":"chat:x","since":"e:1"}}"#,
        r#"{"topic":"subscribe","data":{"topic":"chat:x","history":1}}"#,
    ] {
        h.text(a, bad);
        let lines = h.drain();
        assert_eq!(lines.len(), 1, "{bad}");
        assert_eq!(error_code(&lines[0]).as_deref(), Some("bad_data"), "{bad}");
    }
    assert_eq!(h.hub.subscriber_count("chat:x"), 0);
}

struct DenyChat;
impl Authorizer<String> for DenyChat {
    fn authorize_topic(&mut self, r: &AuthorizeRequest<'_, String>) -> Decision {
        if r.topic.starts_with("chat:") && r.auth == "mallory" {
            Decision::Deny
        } else if r.topic == "chat:ask" && r.command == live_core::Command::Subscribe {
            Decision::Ask
        } else {
            Decision::Allow
        }
    }
}

#[test]
fn recovery_needs_the_right_to_subscribe() {
    let mut h = Harness::with_config(config(10, None));
    h.hub.set_authorizer(DenyChat);
    let p = h.open("p");
    h.publish(p, "chat:x", "1");
    let e = epoch(&h, "chat:x");
    let m = h.open("mallory");
    h.text(m, &since("chat:x", &e, 0));
    let lines = h.drain();
    assert_eq!(lines.len(), 1);
    assert_eq!(error_code(&lines[0]).as_deref(), Some("forbidden"));
}

#[test]
fn an_asked_subscribe_replays_once_allowed_and_keeps_the_order() {
    let mut h = Harness::with_config(config(10, None));
    h.hub.set_authorizer(DenyChat);
    let p = h.open("p");
    h.publish(p, "chat:ask", "1");
    let e = epoch(&h, "chat:ask");
    let a = h.open("a");
    h.text(a, &since("chat:ask", &e, 0));
    let ticket = h
        .events()
        .into_iter()
        .find_map(|ev| match ev {
            Event::Authorize { ticket, .. } => Some(ticket),
            _ => None,
        })
        .unwrap();
    h.publish(p, "chat:ask", "2");
    h.hub.handle_authorize(h.now, ticket, true);
    assert_eq!(
        h.drain(),
        [
            subscribed("a", "chat:ask", &e, 2, true),
            r#"a <- {"topic":"chat:ask","data":1,"offset":1}"#.to_owned(),
            r#"a <- {"topic":"chat:ask","data":2,"offset":2}"#.to_owned(),
        ]
    );
}

#[test]
fn a_subscriber_asking_again_is_recovered_only_at_its_exact_position() {
    let mut h = Harness::with_config(config(10, None));
    let a = h.open("a");
    h.subscribe(a, "chat:x");
    h.publish(a, "chat:x", "1");
    h.publish(a, "chat:x", "2");
    let e = epoch(&h, "chat:x");
    h.drain_flushed();
    h.text(a, &since("chat:x", &e, 2));
    h.text(a, &since("chat:x", &e, 1));
    assert_eq!(
        h.drain(),
        [
            subscribed("a", "chat:x", &e, 2, true),
            subscribed("a", "chat:x", &e, 2, false),
        ]
    );
}

#[test]
fn an_embedder_policy_decides_before_the_rules() {
    let mut c = HubConfig::default();
    c.history = vec![HistoryRule::new("*", HistoryLimits::new(5, None))];
    let mut h = Harness::with_config(c);
    let hub = std::mem::replace(&mut h.hub, live_core::Hub::new(HubConfig::default(), 1));
    h.hub = hub.with_history_policy(|topic: &str| {
        topic
            .starts_with("room:")
            .then_some(HistoryLimits::new(1, None))
    });
    let a = h.open("a");
    h.subscribe(a, "room:1");
    h.subscribe(a, "other");
    h.publish(a, "room:1", "1");
    h.publish(a, "room:1", "2");
    h.publish(a, "other", "3");
    assert_eq!(
        h.drain(),
        [
            r#"a <- {"topic":"room:1","data":1,"offset":1}"#,
            r#"a <- {"topic":"room:1","data":2,"offset":2}"#,
            r#"a <- {"topic":"other","data":3,"offset":1}"#,
        ]
    );
    // The policy's size (1) applies to room:1, the rule's (5) to other.
    assert_eq!(h.hub.metrics().history_entries, 2);
}

/// A send queue of 3, five publications on `chat:x`, and `a` recovering
/// from offset 0: a replay (reply plus five frames) twice the queue's size.
/// Returns the harness, the publisher and `a`.
fn long_replay() -> (Harness, SessionId, SessionId) {
    let mut c = config(10, None);
    c.limits.max_queued_messages = 3;
    let mut h = Harness::with_config(c);
    let p = h.open("p");
    for i in 1..=5 {
        h.publish(p, "chat:x", &i.to_string());
    }
    let e = epoch(&h, "chat:x");
    let a = h.open("a");
    h.text(a, &since("chat:x", &e, 0));
    (h, p, a)
}

#[test]
fn a_replay_larger_than_the_send_queue_goes_out_as_the_reader_takes_it() {
    let (mut h, p, a) = long_replay();
    // The reply and two frames fill the queue; nothing is closed.
    assert_eq!(h.drain().len(), 3);
    assert_eq!(h.hub.queued(a), Some((3, h.hub.queued(a).unwrap().1)));
    // A live publication meanwhile waits behind the replay.
    h.publish(p, "chat:x", "6");
    let lines = h.read_all(a);
    let offsets: Vec<String> = lines
        .iter()
        .map(|l| l.split(r#""offset":"#).nth(1).unwrap_or("?").to_owned())
        .collect();
    assert_eq!(offsets, ["3}", "4}", "5}", "6}"], "{lines:?}");
    assert!(h.closed().is_empty());
}

#[test]
fn a_reader_that_stops_during_a_long_replay_is_closed_as_slow() {
    let (mut h, p, a) = long_replay();
    h.drain();
    // Backlog: 3 replay frames, room for 3 live ones; the fourth overflows.
    for i in 6..=8 {
        h.publish(p, "chat:x", &i.to_string());
    }
    assert!(h.hub.contains(a));
    h.publish(p, "chat:x", "9");
    assert!(!h.hub.contains(a));
    let lines = h.drain();
    assert!(
        lines.iter().any(|l| l.starts_with("a <- close 4008")),
        "{lines:?}"
    );
}

#[test]
fn live_frames_right_after_a_long_replay_wait_instead_of_finding_the_queue_full() {
    let (mut h, p, a) = long_replay();
    assert_eq!(h.drain().len(), 3, "the reply and offsets 1 and 2");
    // One flush: offsets 3 to 5 fill the queue again.
    let (messages, bytes) = h.hub.queued(a).unwrap();
    h.hub.handle_flushed(h.now, a, messages, bytes).unwrap();
    assert_eq!(h.drain().len(), 3);
    assert_eq!(h.hub.queued(a).unwrap().0, 3, "full");
    // Live publications now wait behind the (empty) backlog.
    h.publish(p, "chat:x", "6");
    h.publish(p, "chat:x", "7");
    assert!(h.hub.contains(a), "not closed as slow");
    let lines = h.read_all(a);
    assert_eq!(
        lines,
        [
            r#"a <- {"topic":"chat:x","data":6,"offset":6}"#,
            r#"a <- {"topic":"chat:x","data":7,"offset":7}"#,
        ]
    );
}
