//! Session lifecycle: open, authentication (answered, rejected, timed out),
//! messages held meanwhile, close reported exactly once, shutdown.

mod support;

use std::time::Duration;

use live_core::{CloseReason, Event, Hub, HubConfig, HubError, Rejection, SessionId, TimerReason};
use support::{Harness, drain, drain_events};

#[test]
fn open_asks_for_authentication_and_auth_activates() {
    let mut h = Harness::new();
    let id = h.open_pending("alice");
    assert_eq!(h.events(), [Event::Authenticate { id }]);
    assert_eq!(h.hub.auth(id), None);
    assert_eq!(
        h.hub.subscribe(id, "t"),
        Err(HubError::NotAuthenticated(id))
    );
    h.hub.handle_auth(h.now, id, Ok("alice".into())).unwrap();
    assert_eq!(h.hub.auth(id).map(String::as_str), Some("alice"));
    assert_eq!(
        h.hub.handle_auth(h.now, id, Ok("again".into())),
        Err(HubError::AlreadyAuthenticated(id))
    );
}

#[test]
fn messages_sent_while_authenticating_are_processed_in_order_afterwards() {
    let mut h = Harness::new();
    let bob = h.open("bob");
    h.subscribe(bob, "t");
    let alice = h.open_pending("alice");
    h.subscribe(alice, "t");
    h.publish(alice, "t", "1");
    h.unsubscribe(alice, "t");
    h.publish(alice, "t", "2");
    assert_eq!(h.drain(), Vec::<String>::new());
    h.hub.handle_auth(h.now, alice, Ok("alice".into())).unwrap();
    assert_eq!(
        h.drain(),
        [
            r#"bob <- {"topic":"t","data":1}"#,
            r#"alice <- {"topic":"t","data":1}"#,
            r#"bob <- {"topic":"t","data":2}"#,
        ]
    );
}

#[test]
fn too_many_messages_before_authentication_closes_with_1008() {
    let mut config = HubConfig::default();
    config.limits.max_pending_inbound = 2;
    let mut h = Harness::with_config(config);
    let alice = h.open_pending("alice");
    h.events();
    for _ in 0..3 {
        h.text(alice, r#"{"topic":"x"}"#);
    }
    assert_eq!(
        h.drain(),
        ["alice <- close 1008 too many messages before authorization"]
    );
    assert_eq!(
        h.closed(),
        ["alice closed 1008 too many messages before authorization"]
    );
}

#[test]
fn rejection_closes_with_its_code_and_reason() {
    let mut h = Harness::new();
    let alice = h.open_pending("alice");
    h.events();
    h.hub
        .handle_auth(
            h.now,
            alice,
            Err(Rejection {
                code: 4001,
                reason: "bad token".into(),
            }),
        )
        .unwrap();
    assert_eq!(h.drain(), ["alice <- close 4001 bad token"]);
    assert_eq!(
        h.events(),
        [Event::Closed {
            id: alice,
            reason: CloseReason::AuthRejected {
                code: 4001,
                reason: "bad token".into()
            },
            auth: None,
        }]
    );
    assert_eq!(
        h.hub.handle_auth(h.now, alice, Ok("late".into())),
        Err(HubError::UnknownSession(alice))
    );
}

#[test]
fn a_rejection_with_an_unsendable_code_becomes_1008() {
    let mut h = Harness::new();
    let alice = h.open_pending("alice");
    h.hub
        .handle_auth(
            h.now,
            alice,
            Err(Rejection {
                code: 1006,
                reason: "x".into(),
            }),
        )
        .unwrap();
    assert_eq!(h.drain(), ["alice <- close 1008 x"]);
    let _ = Rejection::new("policy");
}

#[test]
fn unanswered_authentication_times_out() {
    let mut h = Harness::new();
    let alice = h.open_pending("alice");
    h.events();
    assert_eq!(
        h.hub.poll_timeout(),
        Some((h.now + Duration::from_secs(10), TimerReason::AuthDeadline))
    );
    h.advance(Duration::from_secs(9));
    assert!(h.hub.contains(alice));
    assert_eq!(h.next_timeout(), Some(Duration::from_secs(1)));
    assert_eq!(h.drain(), ["alice <- close 1008 authentication timeout"]);
    assert_eq!(h.closed(), ["alice closed 1008 authentication timeout"]);
    assert_eq!(h.hub.poll_timeout(), None);
}

#[test]
fn open_authenticated_skips_the_event() {
    let mut hub: Hub<u32> = Hub::new(HubConfig::default(), 1);
    let now = std::time::Instant::now();
    let id = hub.handle_open_authenticated(now, 7);
    assert!(drain_events(&mut hub).is_empty());
    assert_eq!(hub.auth(id), Some(&7));
    assert!(hub.subscribe(id, "t").unwrap());
}

#[test]
fn every_session_is_reported_closed_exactly_once() {
    let mut h = Harness::new();
    let a = h.open("a");
    let b = h.open("b");
    let c = h.open("c");
    let d = h.open_pending("d");
    h.events();
    h.hub.close(a, 4100, "kicked").unwrap();
    h.hub.handle_transport_closed(h.now, b);
    h.hub.handle_transport_closed(h.now, b);
    h.hub.shutdown(h.now);
    h.hub.shutdown(h.now);
    assert_eq!(
        h.drain(),
        [
            "a <- close 4100 kicked",
            "c <- close 1001 server shutting down",
            "d <- close 1001 server shutting down",
        ]
    );
    assert_eq!(
        h.closed(),
        [
            "a closed 4100 kicked",
            "b closed 1006 transport closed",
            "c closed 1001 server shutting down",
            "d closed 1001 server shutting down",
        ]
    );
    let _ = c;
    let _ = d;
    assert_eq!(h.hub.metrics().sessions, 0);
    assert_eq!(h.hub.poll_timeout(), None);
}

#[test]
fn sessions_opened_after_shutdown_are_closed_at_once() {
    let mut h = Harness::new();
    h.hub.shutdown(h.now);
    let late = h.hub.handle_open(h.now);
    assert_eq!(
        drain(&mut h.hub),
        [live_core::Action::Close {
            id: late,
            code: 1001,
            reason: "server shutting down".into()
        }]
    );
    assert_eq!(
        h.events(),
        [Event::Closed {
            id: late,
            reason: CloseReason::Shutdown,
            auth: None
        }]
    );
    assert!(h.hub.is_shut_down());
}

#[test]
fn ids_come_from_the_seed_and_never_repeat() {
    let now = std::time::Instant::now();
    let mut a: Hub<()> = Hub::new(HubConfig::default(), 9);
    let mut b: Hub<()> = Hub::new(HubConfig::default(), 9);
    let mut c: Hub<()> = Hub::new(HubConfig::default(), 10);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let x = a.handle_open_authenticated(now, ());
        assert_eq!(x, b.handle_open_authenticated(now, ()));
        assert_ne!(x, c.handle_open_authenticated(now, ()));
        a.handle_transport_closed(now, x);
        assert!(seen.insert(x), "id {x} reused");
    }
}

#[test]
fn an_injected_generator_that_collides_still_yields_distinct_open_ids() {
    let now = std::time::Instant::now();
    let mut hub: Hub<()> = Hub::with_id_generator(HubConfig::default(), || 5u64);
    let x = hub.handle_open_authenticated(now, ());
    let y = hub.handle_open_authenticated(now, ());
    assert_eq!(x, SessionId::from_u64(5));
    assert_ne!(x, y);
    assert!(hub.contains(x) && hub.contains(y));
}

#[test]
fn the_hub_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Hub<String>>();
    assert_send::<live_core::Action>();
    assert_send::<Event<String>>();
}

#[test]
fn held_messages_are_bounded_in_bytes_too() {
    let mut config = HubConfig::default();
    config.limits.read_limit = 100;
    let mut h = Harness::with_config(config);
    let alice = h.open_pending("alice");
    h.events();
    let msg = format!(r#"{{"topic":"x","data":"{}"}}"#, "y".repeat(20));
    h.text(alice, &msg);
    h.text(alice, &msg);
    assert!(h.hub.contains(alice));
    h.text(alice, &msg);
    assert_eq!(
        h.closed(),
        ["alice closed 1008 too many messages before authorization"]
    );
}
