//! Authorization of client commands: synchronous policy, asynchronous questions,
//! and the sync-topic rules.

mod support;

use std::time::Duration;

use live_core::{AuthorizeRequest, Authorizer, Command, Decision, Event, Hub, HubConfig};
use support::{Harness, error_code};

/// Alice may do anything on ordinary topics; nobody may publish on `ro:*`; scope
/// `s-<name>` belongs to `<name>`.
struct Policy;

impl Authorizer<String> for Policy {
    fn authorize_topic(&mut self, r: &AuthorizeRequest<'_, String>) -> Decision {
        if r.command == Command::Publish && r.topic.starts_with("ro:") {
            Decision::Deny
        } else {
            Decision::Allow
        }
    }

    fn authorize_scope(&mut self, r: &AuthorizeRequest<'_, String>) -> Decision {
        if r.scope() == Some(&format!("s-{}", r.auth)) {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }
}

fn with_policy() -> Harness {
    let mut h = Harness::new();
    h.hub.set_authorizer(Policy);
    h
}

#[test]
fn a_synchronous_deny_sends_forbidden_and_changes_nothing() {
    let mut h = with_policy();
    let alice = h.open("alice");
    h.subscribe(alice, "ro:news");
    h.publish(alice, "ro:news", "1");
    let lines = h.drain();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(error_code(&lines[0]).as_deref(), Some("forbidden"));
    assert!(h.hub.contains(alice));
}

#[test]
fn sync_scopes_are_decided_by_the_scope_rule_only() {
    let mut h = with_policy();
    let alice = h.open("alice");
    h.subscribe(alice, "sync:s-alice");
    h.subscribe(alice, "sync:s-bob");
    let lines = h.drain();
    assert_eq!(lines.len(), 1);
    assert_eq!(error_code(&lines[0]).as_deref(), Some("forbidden"));
    assert_eq!(
        h.hub.topics_of(alice).unwrap().collect::<Vec<_>>(),
        ["sync:s-alice"]
    );
}

#[test]
fn no_client_may_publish_on_a_sync_topic_but_the_server_may() {
    let mut h = with_policy();
    let alice = h.open("alice");
    h.subscribe(alice, "sync:s-alice");
    h.publish(alice, "sync:s-alice", r#"{"cursor":99}"#);
    let lines = h.drain();
    assert_eq!(lines.len(), 1);
    assert_eq!(error_code(&lines[0]).as_deref(), Some("forbidden"));
    h.hub.publish("sync:s-alice", br#"{"cursor":3}"#).unwrap();
    assert_eq!(
        h.drain(),
        [r#"alice <- {"topic":"sync:s-alice","data":{"cursor":3}}"#]
    );
}

#[test]
fn by_default_ordinary_topics_are_allowed_and_sync_scopes_are_asked() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.subscribe(alice, "chat");
    h.subscribe(alice, "sync:doc1");
    assert_eq!(h.drain(), Vec::<String>::new());
    let events = h.events();
    let [
        Event::Authorize {
            ticket,
            id,
            command,
            topic,
        },
    ] = events.as_slice()
    else {
        panic!("expected one Authorize, got {events:?}");
    };
    assert_eq!(
        (*id, *command, topic.as_str()),
        (alice, Command::Subscribe, "sync:doc1")
    );
    assert_eq!(h.hub.subscriber_count("sync:doc1"), 0);
    h.hub.handle_authorize(h.now, *ticket, true);
    assert_eq!(h.hub.subscriber_count("sync:doc1"), 1);
    // Unsubscribing needs no permission.
    h.unsubscribe(alice, "sync:doc1");
    assert!(h.events().is_empty());
    assert_eq!(h.hub.subscriber_count("sync:doc1"), 0);
}

#[test]
fn an_asynchronous_denial_sends_forbidden() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.subscribe(alice, "sync:doc1");
    let Some(Event::Authorize { ticket, .. }) = h.events().pop() else {
        panic!("no Authorize");
    };
    h.hub.handle_authorize(h.now, ticket, false);
    let lines = h.drain();
    assert_eq!(error_code(&lines[0]).as_deref(), Some("forbidden"));
    assert_eq!(h.hub.subscriber_count("sync:doc1"), 0);
    // A second answer to the same ticket is ignored.
    h.hub.handle_authorize(h.now, ticket, true);
    assert_eq!(h.hub.subscriber_count("sync:doc1"), 0);
}

/// Asks about every publish.
struct AskPublishes;

impl Authorizer<String> for AskPublishes {
    fn authorize_topic(&mut self, r: &AuthorizeRequest<'_, String>) -> Decision {
        if r.command == Command::Publish {
            Decision::Ask
        } else {
            Decision::Allow
        }
    }
}

#[test]
fn later_messages_wait_for_the_answer_so_order_is_kept() {
    let mut h = Harness::new();
    h.hub.set_authorizer(AskPublishes);
    let alice = h.open("alice");
    let bob = h.open("bob");
    h.subscribe(bob, "t");
    h.publish(alice, "t", "1");
    h.subscribe(alice, "t");
    h.publish(alice, "t", "2");
    assert_eq!(h.drain(), Vec::<String>::new());
    let events = h.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let Event::Authorize { ticket, .. } = events[0] else {
        panic!()
    };
    h.hub.handle_authorize(h.now, ticket, true);
    assert_eq!(h.drain(), [r#"bob <- {"topic":"t","data":1}"#]);
    assert_eq!(h.hub.subscriber_count("t"), 2);
    let Some(Event::Authorize { ticket, .. }) = h.events().pop() else {
        panic!("second publish not asked")
    };
    h.hub.handle_authorize(h.now, ticket, true);
    assert_eq!(
        h.drain(),
        // Fan-out follows slot order, here the order the sessions were opened in.
        [
            r#"alice <- {"topic":"t","data":2}"#,
            r#"bob <- {"topic":"t","data":2}"#,
        ]
    );
}

#[test]
fn an_unanswered_question_times_out_as_a_denial() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.subscribe(alice, "sync:doc1");
    h.subscribe(alice, "chat");
    let Some(Event::Authorize { ticket, .. }) = h.events().pop() else {
        panic!()
    };
    h.advance(Duration::from_secs(10));
    let lines = h.drain();
    assert_eq!(error_code(&lines[0]).as_deref(), Some("authorize_timeout"));
    assert_eq!(
        h.hub.topics_of(alice).unwrap().collect::<Vec<_>>(),
        ["chat"]
    );
    h.hub.handle_authorize(h.now, ticket, true);
    assert_eq!(h.hub.subscriber_count("sync:doc1"), 0);
}

#[test]
fn a_closed_session_forgets_its_question() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.subscribe(alice, "sync:doc1");
    let Some(Event::Authorize { ticket, .. }) = h.events().pop() else {
        panic!()
    };
    h.hub.handle_transport_closed(h.now, alice);
    h.hub.handle_authorize(h.now, ticket, true);
    assert_eq!(h.hub.subscriber_count("sync:doc1"), 0);
    assert_eq!(h.closed(), ["alice closed 1006 transport closed"]);
}

#[test]
fn backplane_events_report_topic_activity_and_client_publishes() {
    let mut config = HubConfig::default();
    config.backplane_events = true;
    let mut hub: Hub<()> = Hub::new(config, 3);
    let now = std::time::Instant::now();
    let a = hub.handle_open_authenticated(now, ());
    let b = hub.handle_open_authenticated(now, ());
    hub.subscribe(a, "t").unwrap();
    hub.subscribe(b, "t").unwrap();
    hub.handle_frame(
        now,
        a,
        live_core::Frame::Text(bytes::Bytes::from_static(
            br#"{"topic":"publish","data":{"topic":"t","data":5}}"#,
        )),
    );
    hub.unsubscribe(a, "t").unwrap();
    hub.handle_transport_closed(now, b);
    let events: Vec<_> = std::iter::from_fn(|| hub.poll_event()).collect();
    assert_eq!(
        events,
        [
            Event::TopicActive { topic: "t".into() },
            Event::Published {
                id: a,
                topic: "t".into(),
                data: bytes::Bytes::from_static(b"5")
            },
            Event::TopicInactive { topic: "t".into() },
            Event::Closed {
                id: b,
                reason: live_core::CloseReason::TransportClosed,
                auth: Some(())
            },
        ]
    );
}
