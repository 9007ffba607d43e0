//! The server-side commands and getters.

mod support;

use bytes::Bytes;
use live_core::HubError;
use support::Harness;

#[test]
fn server_subscribe_unsubscribe_and_counts() {
    let mut h = Harness::new();
    let a = h.open("a");
    let b = h.open("b");
    assert_eq!(h.hub.subscribe(a, "x"), Ok(true));
    assert_eq!(h.hub.subscribe(a, "x"), Ok(false));
    assert_eq!(h.hub.subscribe(a, "y"), Ok(true));
    assert_eq!(h.hub.subscribe(b, "x"), Ok(true));
    assert_eq!(h.hub.subscriber_count("x"), 2);
    assert_eq!(h.hub.subscribers("x").collect::<Vec<_>>(), [a, b]);
    assert_eq!(h.hub.topics_of(a).unwrap().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!(h.hub.unsubscribe(a, "x"), Ok(true));
    assert_eq!(h.hub.unsubscribe(a, "x"), Ok(false));
    assert_eq!(h.hub.unsubscribe_all(b), Ok(1));
    assert_eq!(h.hub.subscriber_count("x"), 0);
    assert_eq!(h.hub.metrics().subscriptions, 1);
    assert_eq!(h.hub.metrics().topics, 1);
}

#[test]
fn server_publish_reports_deliveries_and_validates() {
    let mut h = Harness::new();
    let a = h.open("a");
    h.hub.subscribe(a, "x").unwrap();
    assert_eq!(h.hub.publish("x", b" {\"k\": 1} "), Ok(1));
    assert_eq!(h.hub.publish("nobody", b"1"), Ok(0));
    assert!(matches!(
        h.hub.publish("x", b"{"),
        Err(HubError::InvalidJson(_))
    ));
    assert!(matches!(
        h.hub.publish("", b"1"),
        Err(HubError::InvalidTopic(_))
    ));
    let long = "t".repeat(257);
    assert!(matches!(
        h.hub.publish(&long, b"1"),
        Err(HubError::InvalidTopic(_))
    ));
    assert_eq!(h.drain(), [r#"a <- {"topic":"x","data":{"k": 1}}"#]);
}

#[test]
fn send_reaches_only_its_session() {
    let mut h = Harness::new();
    let a = h.open("a");
    let _b = h.open("b");
    assert_eq!(h.hub.send(a, "welcome", br#"{"n":1}"#), Ok(true));
    assert_eq!(
        h.hub
            .send_raw(a, Bytes::from_static(br#"{"topic":"raw","data":0}"#)),
        Ok(true)
    );
    assert!(matches!(
        h.hub.send_raw(a, Bytes::from_static(b"nope")),
        Err(HubError::InvalidJson(_))
    ));
    assert_eq!(
        h.drain(),
        [
            r#"a <- {"topic":"welcome","data":{"n":1}}"#,
            r#"a <- {"topic":"raw","data":0}"#,
        ]
    );
}

#[test]
fn close_validates_the_code_and_cuts_the_reason() {
    let mut h = Harness::new();
    let a = h.open("a");
    assert_eq!(
        h.hub.close(a, 1005, "x"),
        Err(HubError::InvalidCloseCode(1005))
    );
    assert!(h.hub.contains(a));
    let long = "é".repeat(100);
    h.hub.close(a, 4000, &long).unwrap();
    let lines = h.drain();
    let reason = lines[0].strip_prefix("a <- close 4000 ").unwrap();
    assert!(reason.len() <= 123 && reason.len() >= 121);
    assert!(reason.chars().all(|c| c == 'é'));
    assert_eq!(h.hub.close(a, 1000, ""), Err(HubError::UnknownSession(a)));
}

#[test]
fn commands_on_unknown_sessions_are_errors() {
    let mut h = Harness::new();
    let a = h.open("a");
    h.hub.handle_transport_closed(h.now, a);
    assert_eq!(h.hub.subscribe(a, "x"), Err(HubError::UnknownSession(a)));
    assert_eq!(h.hub.unsubscribe(a, "x"), Err(HubError::UnknownSession(a)));
    assert_eq!(h.hub.unsubscribe_all(a), Err(HubError::UnknownSession(a)));
    assert_eq!(h.hub.send(a, "x", b"1"), Err(HubError::UnknownSession(a)));
    assert!(h.hub.topics_of(a).is_none());
    assert_eq!(h.hub.queued(a), None);
}

#[test]
fn send_to_a_session_still_authenticating_is_allowed() {
    let mut h = Harness::new();
    let a = h.open_pending("a");
    assert_eq!(h.hub.send(a, "hello", b"1"), Ok(true));
    assert_eq!(h.drain(), [r#"a <- {"topic":"hello","data":1}"#]);
}

#[test]
fn broadcast_reaches_every_authenticated_session_once() {
    let mut h = Harness::new();
    let a = h.open("a");
    let b = h.open("b");
    let _pending = h.open_pending("p");
    h.hub.subscribe(a, "x").unwrap();
    assert_eq!(h.hub.broadcast("notice", br#""maintenance""#), Ok(2));
    assert_eq!(
        h.drain(),
        [
            r#"a <- {"topic":"notice","data":"maintenance"}"#,
            r#"b <- {"topic":"notice","data":"maintenance"}"#,
        ]
    );
    assert_eq!(h.hub.session_count(), 3);
    let _ = b;
}
