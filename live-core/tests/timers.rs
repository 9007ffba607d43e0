//! Heartbeats, idle timeout and the timer contract.

mod support;

use std::time::Duration;

use live_core::{Frame, HubConfig, TimerReason};
use support::Harness;

fn timers(ping: u64, idle: u64) -> Harness {
    let mut config = HubConfig::default();
    config.timers.ping_interval = Some(Duration::from_secs(ping));
    config.timers.idle_timeout = Some(Duration::from_secs(idle));
    Harness::with_config(config)
}

#[test]
fn pings_every_interval_and_closes_a_silent_peer_on_idle() {
    let mut h = timers(10, 25);
    let alice = h.open("alice");
    assert_eq!(
        h.hub.poll_timeout(),
        Some((h.now + Duration::from_secs(10), TimerReason::Ping))
    );
    let mut transcript = Vec::new();
    while let Some(step) = h.next_timeout() {
        for line in h.drain_flushed() {
            transcript.push(format!("+{}s {line}", h.elapsed().as_secs()));
        }
        assert!(step > Duration::ZERO || !h.hub.contains(alice));
    }
    assert_eq!(
        transcript,
        [
            "+10s alice <- ping 0",
            "+20s alice <- ping 0",
            "+25s alice <- close 4000 idle timeout",
        ]
    );
    assert_eq!(h.closed(), ["alice closed 4000 idle timeout"]);
}

#[test]
fn any_frame_from_the_peer_postpones_the_idle_deadline() {
    let mut h = timers(10, 25);
    let alice = h.open("alice");
    for _ in 0..10 {
        h.advance(Duration::from_secs(10));
        h.drain_flushed();
        h.frame(alice, Frame::Pong(bytes::Bytes::new()));
    }
    assert!(h.hub.contains(alice));
    assert_eq!(h.elapsed(), Duration::from_secs(100));
    h.advance(Duration::from_secs(24));
    assert!(h.hub.contains(alice));
    h.advance(Duration::from_secs(1));
    assert!(!h.hub.contains(alice));
}

#[test]
fn after_handle_timeout_the_next_deadline_is_strictly_later() {
    let mut h = timers(1, 3);
    let ids: Vec<_> = (0..5).map(|i| h.open(&format!("s{i}"))).collect();
    for (i, &id) in ids.iter().enumerate() {
        h.advance(Duration::from_millis(300 * i as u64));
        h.frame(id, Frame::Pong(bytes::Bytes::new()));
    }
    for _ in 0..50 {
        let Some((at, _)) = h.hub.poll_timeout() else {
            break;
        };
        h.now = at;
        h.hub.handle_timeout(at);
        h.drain_flushed();
        if let Some((next, _)) = h.hub.poll_timeout() {
            assert!(next > at);
        }
    }
    assert_eq!(h.hub.metrics().sessions, 0);
}

#[test]
fn timers_can_be_turned_off() {
    let mut config = HubConfig::default();
    config.timers.ping_interval = None;
    config.timers.idle_timeout = None;
    let mut h = Harness::with_config(config);
    h.open("alice");
    assert_eq!(h.hub.poll_timeout(), None);
}

#[test]
fn zero_durations_still_give_deadlines_after_now() {
    let mut config = HubConfig::default();
    config.timers.ping_interval = Some(Duration::ZERO);
    config.timers.idle_timeout = None;
    let mut h = Harness::with_config(config);
    h.open("alice");
    for _ in 0..3 {
        let (at, _) = h.hub.poll_timeout().unwrap();
        assert!(at > h.now);
        h.now = at;
        h.hub.handle_timeout(at);
        h.drain_flushed();
    }
}

#[test]
fn durations_too_large_to_represent_mean_never() {
    let mut config = HubConfig::default();
    config.timers.ping_interval = Some(Duration::MAX);
    config.timers.idle_timeout = Some(Duration::MAX);
    config.timers.auth_timeout = Some(Duration::MAX);
    config.timers.authorize_timeout = Some(Duration::MAX);
    let mut h = Harness::with_config(config);
    h.open("alice");
    h.open_pending("bob");
    h.events();
    assert_eq!(h.hub.poll_timeout(), None);
    h.advance(Duration::from_secs(1_000_000));
    assert_eq!(h.hub.metrics().sessions, 2);
}
