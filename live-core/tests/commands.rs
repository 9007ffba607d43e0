//! Client built-in commands and messages, as transcripts.

mod support;

use bytes::Bytes;
use live_core::{BuiltinCommands, Event, Frame, HubConfig};
use support::{Harness, error_code};

#[test]
fn subscribe_then_publish_reaches_every_subscriber_once_in_order() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    let bob = h.open("bob");
    let carol = h.open("carol");
    h.subscribe(alice, "chat");
    h.subscribe(bob, "chat");
    h.publish(carol, "chat", r#"{"text":"hi"}"#);
    h.publish(carol, "chat", "2");
    h.publish(carol, "other", "3");
    assert_eq!(
        h.drain(),
        [
            r#"alice <- {"topic":"chat","data":{"text":"hi"}}"#,
            r#"bob <- {"topic":"chat","data":{"text":"hi"}}"#,
            r#"alice <- {"topic":"chat","data":2}"#,
            r#"bob <- {"topic":"chat","data":2}"#,
        ]
    );
    assert_eq!(h.hub.subscriber_count("chat"), 2);
    assert_eq!(
        h.hub.topics_of(alice).unwrap().collect::<Vec<_>>(),
        ["chat"]
    );
}

#[test]
fn data_is_forwarded_byte_for_byte_never_reformatted() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.subscribe(alice, "t");
    h.publish(alice, "t", r#"{ "b" : 1.50, "a" : [ "\u00e9" ] }"#);
    assert_eq!(
        h.drain(),
        [r#"alice <- {"topic":"t","data":{ "b" : 1.50, "a" : [ "\u00e9" ] }}"#]
    );
}

#[test]
fn publish_without_data_sends_null() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.subscribe(alice, "t");
    h.text(alice, r#"{"topic":"publish","data":{"topic":"t"}}"#);
    assert_eq!(h.drain(), [r#"alice <- {"topic":"t","data":null}"#]);
}

#[test]
fn unsubscribe_stops_delivery_and_is_idempotent() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.subscribe(alice, "t");
    h.subscribe(alice, "t");
    assert_eq!(h.hub.subscriber_count("t"), 1);
    h.unsubscribe(alice, "t");
    h.unsubscribe(alice, "t");
    h.publish(alice, "t", "1");
    assert_eq!(h.drain(), Vec::<String>::new());
    assert_eq!(h.hub.subscriber_count("t"), 0);
    assert_eq!(h.hub.metrics().topics, 0);
}

#[test]
fn topics_with_escapes_round_trip() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.text(
        alice,
        r#"{"topic":"subscribe","data":{"topic":"a\"b\u00e9"}}"#,
    );
    assert_eq!(h.hub.subscriber_count("a\"bé"), 1);
    h.hub.publish("a\"bé", b"1").unwrap();
    assert_eq!(h.drain(), [r#"alice <- {"topic":"a\"bé","data":1}"#]);
}

#[test]
fn malformed_messages_get_error_frames_and_the_connection_stays_open() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    let cases = [
        ("{nope", "bad_json"),
        ("[1,2]", "bad_json"),
        ("\"str\"", "bad_json"),
        (r#"{"data":1}"#, "bad_topic"),
        (r#"{"topic":5}"#, "bad_topic"),
        (r#"{"topic":""}"#, "bad_topic"),
        (r#"{"topic":"subscribe"}"#, "bad_data"),
        (r#"{"topic":"subscribe","data":"x"}"#, "bad_data"),
        (r#"{"topic":"subscribe","data":{}}"#, "bad_topic"),
        (r#"{"topic":"subscribe","data":{"topic":7}}"#, "bad_topic"),
        (
            r#"{"topic":"publish","data":{"topic":"error","data":1}}"#,
            "bad_topic",
        ),
        (
            r#"{"topic":"subscribe","data":{"topic":"error"}}"#,
            "bad_topic",
        ),
    ];
    for (input, code) in cases {
        h.text(alice, input);
        let lines = h.drain_flushed();
        assert_eq!(lines.len(), 1, "{input}: {lines:?}");
        assert_eq!(error_code(&lines[0]).as_deref(), Some(code), "{input}");
    }
    assert!(h.hub.contains(alice));
    assert_eq!(h.hub.metrics().errors_sent, cases.len() as u64);
    // Still served afterwards.
    h.subscribe(alice, "t");
    h.hub.publish("t", b"true").unwrap();
    assert_eq!(h.drain(), [r#"alice <- {"topic":"t","data":true}"#]);
}

#[test]
fn error_frame_shape_is_topic_error_with_code_and_message() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.text(alice, "{");
    assert_eq!(
        h.drain(),
        [
            r#"alice <- {"topic":"error","data":{"code":"bad_json","message":"message is not a JSON object"}}"#
        ]
    );
}

#[test]
fn topic_length_limit() {
    let mut config = HubConfig::default();
    config.limits.max_topic_len = 8;
    let mut h = Harness::with_config(config);
    let alice = h.open("alice");
    h.subscribe(alice, "12345678");
    assert_eq!(h.drain(), Vec::<String>::new());
    h.subscribe(alice, "123456789");
    let lines = h.drain();
    assert_eq!(error_code(&lines[0]).as_deref(), Some("topic_too_long"));
    h.publish(alice, "123456789", "1");
    let lines = h.drain();
    assert_eq!(error_code(&lines[0]).as_deref(), Some("topic_too_long"));
    assert_eq!(
        h.hub.topics_of(alice).unwrap().collect::<Vec<_>>(),
        ["12345678"]
    );
    // The envelope's own topic is limited too (application messages), but the
    // built-in command names are not subject to it.
    h.text(alice, r#"{"topic":"123456789","data":1}"#);
    let lines = h.drain();
    assert_eq!(error_code(&lines[0]).as_deref(), Some("topic_too_long"));
    assert!(h.events().is_empty());
}

#[test]
fn per_session_topic_limit() {
    let mut config = HubConfig::default();
    config.limits.max_topics_per_session = 2;
    let mut h = Harness::with_config(config);
    let alice = h.open("alice");
    h.subscribe(alice, "a");
    h.subscribe(alice, "b");
    h.subscribe(alice, "a");
    assert_eq!(h.drain(), Vec::<String>::new());
    h.subscribe(alice, "c");
    let lines = h.drain();
    assert_eq!(error_code(&lines[0]).as_deref(), Some("too_many_topics"));
    assert_eq!(
        h.hub.topics_of(alice).unwrap().collect::<Vec<_>>(),
        ["a", "b"]
    );
    h.unsubscribe(alice, "a");
    h.subscribe(alice, "c");
    assert_eq!(h.drain(), Vec::<String>::new());
    assert_eq!(
        h.hub.topics_of(alice).unwrap().collect::<Vec<_>>(),
        ["b", "c"]
    );
}

#[test]
fn other_topics_are_application_messages_with_raw_data() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.text(alice, r#"{"topic":"cursor","data":{"x": 1},"ref":"r1"}"#);
    h.text(alice, r#"{"topic":"typing"}"#);
    assert_eq!(h.drain(), Vec::<String>::new());
    assert_eq!(
        h.events(),
        [
            Event::Message {
                id: alice,
                topic: "cursor".into(),
                data: Bytes::from_static(br#"{"x": 1}"#),
            },
            Event::Message {
                id: alice,
                topic: "typing".into(),
                data: Bytes::from_static(b"null"),
            },
        ]
    );
}

#[test]
fn without_application_messages_other_topics_are_unknown_commands() {
    let mut config = HubConfig::default();
    config.application_messages = false;
    let mut h = Harness::with_config(config);
    let alice = h.open("alice");
    h.text(alice, r#"{"topic":"cursor","data":1}"#);
    let lines = h.drain();
    assert_eq!(error_code(&lines[0]).as_deref(), Some("unknown_command"));
    assert!(h.events().is_empty());
}

#[test]
fn a_command_switched_off_is_an_application_message() {
    let mut config = HubConfig::default();
    config.commands = BuiltinCommands::none();
    config.commands.subscribe = true;
    let mut h = Harness::with_config(config);
    let alice = h.open("alice");
    h.subscribe(alice, "t");
    h.publish(alice, "t", "1");
    assert_eq!(h.drain(), Vec::<String>::new());
    assert_eq!(
        h.events(),
        [Event::Message {
            id: alice,
            topic: "publish".into(),
            data: Bytes::from_static(br#"{"topic":"t","data":1}"#),
        }]
    );
    assert_eq!(h.hub.subscriber_count("t"), 1);
}

#[test]
fn binary_frames_carry_the_same_envelope() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.frame(
        alice,
        Frame::Binary(Bytes::from_static(
            br#"{"topic":"subscribe","data":{"topic":"t"}}"#,
        )),
    );
    h.frame(
        alice,
        Frame::Binary(Bytes::from_static(
            br#"{"topic":"publish","data":{"topic":"t","data":[1]}}"#,
        )),
    );
    assert_eq!(h.drain_flushed(), [r#"alice <- {"topic":"t","data":[1]}"#]);
    // A binary frame that is not UTF-8 is a bad message, not a protocol violation.
    h.frame(alice, Frame::Binary(Bytes::from_static(b"\xff\xfe")));
    let lines = h.drain();
    assert_eq!(error_code(&lines[0]).as_deref(), Some("bad_json"));
    assert!(h.hub.contains(alice));
}

#[test]
fn counters_follow_traffic() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    let bob = h.open("bob");
    h.subscribe(alice, "t");
    h.subscribe(bob, "t");
    h.publish(alice, "t", "1");
    let lines = h.drain_flushed();
    let m = h.hub.metrics();
    assert_eq!(m.sessions, 2);
    assert_eq!(m.sessions_opened, 2);
    assert_eq!(m.topics, 1);
    assert_eq!(m.subscriptions, 2);
    assert_eq!(m.messages_in, 3);
    assert_eq!(m.messages_out, 2);
    assert_eq!(m.publishes, 1);
    let frame_len = r#"{"topic":"t","data":1}"#.len() as u64;
    assert_eq!(lines.len(), 2);
    assert_eq!(m.bytes_out, 2 * frame_len);
}
