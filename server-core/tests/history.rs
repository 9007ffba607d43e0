//! History, recovery and presence through the whole server core: pokes on
//! `sync:` topics with history, scope rules for recovery, expiry on the
//! core's timer, the presence user from the policy, and the metrics.

mod support;

use std::time::Duration;

use live_core::{HistoryLimits, HistoryRule, TimerReason};
use server_core::CoreConfig;
use server_core::TimerReason as CoreTimer;
use support::Harness;
use sync_core::MemoryStore;

fn config(pattern: &str, size: usize, ttl: Option<Duration>) -> CoreConfig {
    let mut c = CoreConfig::with_seed(7);
    c.hub.timers.ping_interval = None;
    c.hub.timers.idle_timeout = None;
    c.hub.history = vec![HistoryRule::new(pattern, HistoryLimits::new(size, ttl))];
    c
}

fn since(topic: &str, epoch: &str, offset: u64) -> String {
    format!(
        r#"{{"topic":"subscribe","data":{{"topic":"{topic}","since":{{"epoch":"{epoch}","offset":{offset}}}}}}}"#
    )
}

#[test]
fn pokes_on_a_scope_with_history_are_numbered_and_recovered_after_a_reconnect() {
    let mut h = Harness::with(config("sync:*", 10, None), MemoryStore::new());
    let alice = h.open("alice");
    h.subscribe(alice, "sync:s");
    h.push("p1", "s", &["a"]);
    h.drain();
    h.persist_ok();
    let lines = h.drain();
    assert!(
        lines.contains(&r#"alice <- {"topic":"sync:s","data":{"cursor":1},"offset":1}"#.to_owned()),
        "{lines:?}"
    );
    let epoch = h
        .core
        .hub()
        .history_position("sync:s")
        .unwrap()
        .0
        .to_owned();
    h.core.handle_transport_closed(h.now, alice);
    h.push("p2", "s", &["b"]);
    h.drain();
    h.persist_ok();
    h.drain();
    let again = h.open("alice2");
    h.text(again, &since("sync:s", &epoch, 1));
    let lines = h.drain();
    assert_eq!(
        lines,
        [
            format!(
                r#"alice2 <- {{"topic":"subscribed","data":{{"topic":"sync:s","epoch":"{epoch}","offset":2,"recovered":true}}}}"#
            ),
            r#"alice2 <- {"topic":"sync:s","data":{"cursor":2},"offset":2}"#.to_owned(),
        ]
    );
    assert_eq!(h.core.metrics().live.recoveries, 1);
}

#[test]
fn recovery_and_presence_of_a_scope_follow_the_scope_rules() {
    let mut h = Harness::with(config("sync:*", 10, None), MemoryStore::new());
    let alice = h.open("alice");
    h.subscribe(alice, "sync:s");
    h.push("p1", "s", &["a"]);
    h.drain();
    h.persist_ok();
    h.drain();
    let epoch = h
        .core
        .hub()
        .history_position("sync:s")
        .unwrap()
        .0
        .to_owned();
    let deny = h.open("deny");
    h.text(deny, &since("sync:s", &epoch, 0));
    h.text(deny, r#"{"topic":"presence","data":{"topic":"sync:s"}}"#);
    let lines = h.drain();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert!(
            line.starts_with("deny <- ") && line.contains("forbidden"),
            "{line}"
        );
    }
    assert!(
        h.core.hub().topics_of(deny).unwrap().next().is_none(),
        "nothing subscribed"
    );
}

#[test]
fn history_expires_on_the_core_timer_and_the_metrics_follow() {
    let ttl = Duration::from_secs(30);
    let mut h = Harness::with(config("chat:*", 10, Some(ttl)), MemoryStore::new());
    let a = h.open("a");
    h.subscribe(a, "chat:x");
    h.core
        .publish("chat:x", bytes::Bytes::from_static(b"\"hi\""))
        .unwrap();
    assert_eq!(
        h.drain(),
        [r#"a <- {"topic":"chat:x","data":"hi","offset":1}"#]
    );
    let m = h.core.metrics().live;
    assert_eq!((m.history_topics, m.history_entries), (1, 1));
    assert_eq!(
        m.history_bytes,
        r#"{"topic":"chat:x","data":"hi","offset":1}"#.len()
    );
    let (at, why) = h.core.poll_timeout().unwrap();
    assert_eq!(why, CoreTimer::Hub(TimerReason::HistoryExpiry));
    assert_eq!(at, h.now + ttl);
    h.advance(ttl);
    h.core.handle_timeout(h.now);
    let m = h.core.metrics().live;
    assert_eq!((m.history_entries, m.history_bytes), (0, 0));
    let text = server_core::metrics::render(&h.core.metrics());
    assert!(text.contains("\nlive_history_entries 0\n"), "{text}");
}

#[test]
fn presence_shows_the_user_the_policy_derives_and_needs_the_topic_right() {
    let mut h = Harness::new();
    let admin = h.open("admin");
    h.text(
        admin,
        r#"{"topic":"subscribe","data":{"topic":"private","presence":true}}"#,
    );
    let bob = h.open("bob");
    h.text(
        bob,
        r#"{"topic":"subscribe","data":{"topic":"private","presence":true}}"#,
    );
    h.text(bob, r#"{"topic":"presence","data":{"topic":"private"}}"#);
    let admin2 = h.open("admin");
    h.subscribe(admin2, "private");
    h.text(admin2, r#"{"topic":"presence","data":{"topic":"private"}}"#);
    let lines = h.drain();
    let bob_lines: Vec<_> = lines.iter().filter(|l| l.starts_with("bob <- ")).collect();
    assert_eq!(bob_lines.len(), 2, "{lines:?}");
    assert!(bob_lines.iter().all(|l| l.contains("forbidden")));
    assert!(
        lines.contains(&format!(
            r#"admin <- {{"topic":"join","data":{{"topic":"private","session":"{admin2}","user":"admin"}}}}"#
        )),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!(
            r#"admin <- {{"topic":"presence","data":{{"topic":"private","clients":[{{"session":"{admin}","user":"admin"}},{{"session":"{admin2}","user":"admin"}}]}}}}"#
        )),
        "{lines:?}"
    );
}

/// With a broker keeping history (`broker_history`): a publish on a history
/// topic leaves as an append and is delivered only when it comes back
/// numbered; a recovering subscribe's read goes out after the interest that
/// subscribes the node to the topic; without a link, publications stay on
/// the node and reads fail.
#[test]
fn a_broker_keeps_history_the_read_follows_the_interest_and_without_a_link_nothing_waits() {
    let mut c = config("chat:*", 10, Some(Duration::from_secs(60)));
    c.hub.backplane_events = true;
    c.hub.broker_history = true;
    let mut h = Harness::with(c, MemoryStore::new());
    // No link yet: delivered unnumbered, and a read fails at once.
    let alice = h.open("alice");
    h.subscribe(alice, "chat:1");
    h.text(
        alice,
        r#"{"topic":"publish","data":{"topic":"chat:1","data":1}}"#,
    );
    assert_eq!(h.drain(), [r#"alice <- {"topic":"chat:1","data":1}"#]);
    h.text(alice, &since("chat:1", "e", 0));
    assert_eq!(
        h.drain(),
        [
            r#"alice <- {"topic":"subscribed","data":{"topic":"chat:1","epoch":"","offset":0,"recovered":false}}"#
        ]
    );

    h.core.handle_broker_attached(h.now);
    assert_eq!(
        h.drain(),
        [r#"broker Interest { subscribe: ["chat:1"], unsubscribe: [] }"#]
    );
    h.text(
        alice,
        r#"{"topic":"publish","data":{"topic":"chat:1","data":2}}"#,
    );
    assert_eq!(
        h.drain(),
        [
            r#"broker Append { topic: "chat:1", data: b"2", limits: HistoryLimits { size: 10, ttl: Some(60s) } }"#
        ]
    );
    h.core.publish("chat:1", "3".into()).unwrap();
    assert_eq!(
        h.drain(),
        [
            r#"broker Append { topic: "chat:1", data: b"3", limits: HistoryLimits { size: 10, ttl: Some(60s) } }"#
        ]
    );
    h.core.handle_broker_numbered(h.now, "chat:1", "e", 1, b"2");
    assert_eq!(
        h.drain(),
        [r#"alice <- {"topic":"chat:1","data":2,"offset":1}"#]
    );
    h.core.handle_broker_append_failed(h.now, "chat:1", b"3");
    assert_eq!(h.drain(), [r#"alice <- {"topic":"chat:1","data":3}"#]);

    let bob = h.open("bob");
    h.text(bob, &since("chat:2", "e", 0));
    assert_eq!(
        h.drain(),
        [
            r#"broker Interest { subscribe: ["chat:2"], unsubscribe: [] }"#,
            r#"broker ReadHistory { request: 2, topic: "chat:2", after: Some(0), limits: HistoryLimits { size: 10, ttl: Some(60s) } }"#,
        ]
    );
    h.core.handle_history_read(
        h.now,
        2,
        Some(server_core::HistoryRead {
            epoch: "e".into(),
            last: 1,
            entries: vec![(1, bytes::Bytes::from_static(b"\"x\""))],
        }),
    );
    assert_eq!(
        h.drain(),
        [
            r#"bob <- {"topic":"subscribed","data":{"topic":"chat:2","epoch":"e","offset":1,"recovered":true}}"#,
            r#"bob <- {"topic":"chat:2","data":"x","offset":1}"#,
        ]
    );
    h.core
        .handle_broker_numbered(h.now, "chat:2", "e", 1, b"\"x\"");
    assert!(h.drain().is_empty(), "the live copy of a replayed one");
}

/// Presence across nodes (`broker_presence`): joins and leaves go to the
/// broker (sync topics excepted), other nodes' are announced, and a query
/// waits for the broker's members, read after the step's interest change;
/// without a link it lists this node's subscribers at once.
#[test]
fn presence_spans_nodes_through_the_broker() {
    let mut c = config("none", 1, None);
    c.hub.backplane_events = true;
    c.hub.broker_presence = true;
    let mut h = Harness::with(c, MemoryStore::new());
    let alice = h.open("alice");
    h.text(alice, r#"{"topic":"presence","data":{"topic":"room"}}"#);
    assert_eq!(
        h.drain(),
        [r#"alice <- {"topic":"presence","data":{"topic":"room","clients":[]}}"#]
    );
    h.core.handle_broker_attached(h.now);
    h.text(
        alice,
        r#"{"topic":"subscribe","data":{"topic":"room","presence":true}}"#,
    );
    h.text(alice, r#"{"topic":"presence","data":{"topic":"room"}}"#);
    let lines = h.drain();
    let id = h.core.hub().sessions().next().unwrap().to_string();
    assert_eq!(
        lines,
        [
            format!(
                r#"broker Presence {{ topic: "room", member: PresenceMember {{ session: "{id}", user: Some("alice") }}, joined: true }}"#
            ),
            r#"broker Interest { subscribe: ["room"], unsubscribe: [] }"#.to_owned(),
            r#"broker ReadPresence { request: 2, topic: "room" }"#.to_owned(),
        ]
    );
    let bob = server_core::PresenceMember {
        session: "00000000000000ff".into(),
        user: Some("bob".into()),
    };
    h.core
        .handle_presence_members(h.now, 2, Some(vec![bob.clone()]));
    h.core.handle_broker_presence(h.now, "room", &bob, false);
    assert_eq!(
        h.drain(),
        [
            format!(
                r#"alice <- {{"topic":"presence","data":{{"topic":"room","clients":[{{"session":"{id}","user":"alice"}},{{"session":"00000000000000ff","user":"bob"}}]}}}}"#
            ),
            r#"alice <- {"topic":"leave","data":{"topic":"room","session":"00000000000000ff","user":"bob"}}"#.to_owned(),
        ]
    );
}
