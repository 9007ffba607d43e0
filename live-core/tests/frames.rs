//! RFC 6455 frame handling: control frames, read limit, UTF-8.

mod support;

use bytes::Bytes;
use live_core::{CloseReason, Event, Frame, HubConfig};
use support::Harness;

#[test]
fn ping_is_answered_with_a_pong_carrying_its_payload() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.frame(alice, Frame::Ping(Bytes::from_static(b"abc")));
    assert_eq!(h.drain(), ["alice <- pong abc"]);
}

#[test]
fn oversized_ping_is_a_protocol_error() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.frame(alice, Frame::Ping(Bytes::from(vec![b'x'; 126])));
    assert_eq!(h.drain(), ["alice <- close 1002 protocol error"]);
    assert_eq!(h.closed(), ["alice closed 1002 protocol error"]);
}

#[test]
fn pong_is_accepted_silently() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.frame(alice, Frame::Pong(Bytes::new()));
    assert_eq!(h.drain(), Vec::<String>::new());
    assert!(h.hub.contains(alice));
}

#[test]
fn peer_close_is_echoed_and_reported_once() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.subscribe(alice, "t");
    h.frame(alice, Frame::Close(Some((1000, "bye".into()))));
    h.frame(alice, Frame::Close(Some((1000, "bye".into()))));
    h.hub.handle_transport_closed(h.now, alice);
    assert_eq!(h.drain(), ["alice <- close 1000 bye"]);
    let events = h.events();
    assert_eq!(
        events,
        [Event::Closed {
            id: alice,
            reason: CloseReason::Peer {
                code: 1000,
                reason: "bye".into()
            },
            auth: Some("alice".into()),
        }]
    );
    assert_eq!(h.hub.subscriber_count("t"), 0);
    assert!(!h.hub.contains(alice));
}

#[test]
fn peer_close_without_status_is_answered_with_normal_closure() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.frame(alice, Frame::Close(None));
    assert_eq!(h.drain(), ["alice <- close 1000 "]);
    assert_eq!(h.closed(), ["alice closed 1005 "]);
}

#[test]
fn close_with_a_forbidden_code_is_a_protocol_error() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        let mut h = Harness::new();
        let alice = h.open("alice");
        h.frame(alice, Frame::Close(Some((code, String::new()))));
        assert_eq!(
            h.drain(),
            ["alice <- close 1002 protocol error"],
            "code {code}"
        );
    }
}

#[test]
fn frame_over_the_read_limit_closes_with_1009() {
    let mut config = HubConfig::default();
    config.limits.read_limit = 16;
    let mut h = Harness::with_config(config);
    let alice = h.open("alice");
    let bob = h.open("bob");
    h.text(alice, r#"{"topic":"x"}"#);
    h.text(bob, r#"{"topic":"x","data":12345}"#);
    assert_eq!(h.drain(), ["bob <- close 1009 message too big"]);
    assert!(h.hub.contains(alice));
    assert!(!h.hub.contains(bob));
}

#[test]
fn invalid_utf8_text_closes_with_1007() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.frame(
        alice,
        Frame::Text(Bytes::from_static(b"{\"topic\":\"\xc3\x28\"}")),
    );
    assert_eq!(h.drain(), ["alice <- close 1007 invalid utf-8"]);
    assert_eq!(h.closed(), ["alice closed 1007 invalid utf-8"]);
}

#[test]
fn frames_for_a_closed_session_are_ignored() {
    let mut h = Harness::new();
    let alice = h.open("alice");
    h.hub.close(alice, 1000, "done").unwrap();
    h.drain();
    h.events();
    h.text(alice, r#"{"topic":"subscribe","data":{"topic":"t"}}"#);
    h.hub.handle_flushed(h.now, alice, 1, 1).unwrap();
    h.hub.handle_transport_closed(h.now, alice);
    assert_eq!(h.drain(), Vec::<String>::new());
    assert!(h.events().is_empty());
    assert_eq!(h.hub.subscriber_count("t"), 0);
}

#[test]
fn faults_the_transport_refused_close_with_their_code_and_are_the_peers_fault() {
    use live_core::PeerFault;
    let cases = [
        (
            PeerFault::TooBig,
            "1009 message too big",
            CloseReason::TooBig,
        ),
        (
            PeerFault::InvalidUtf8,
            "1007 invalid utf-8",
            CloseReason::InvalidUtf8,
        ),
        (
            PeerFault::ProtocolError,
            "1002 protocol error",
            CloseReason::ProtocolError,
        ),
    ];
    for (fault, close, reason) in cases {
        let mut h = Harness::new();
        let alice = h.open("alice");
        h.subscribe(alice, "t");
        h.hub.handle_peer_fault(h.now, alice, fault);
        // A second report (the reader and writer both saw it) changes nothing.
        h.hub.handle_peer_fault(h.now, alice, fault);
        assert_eq!(h.drain(), [format!("alice <- close {close}")]);
        assert_eq!(
            h.events(),
            [Event::Closed {
                id: alice,
                reason,
                auth: Some("alice".into()),
            }]
        );
        assert_eq!(h.hub.subscriber_count("t"), 0);
        assert_eq!(h.hub.metrics().peer_fault_closes, 1);
    }
}
