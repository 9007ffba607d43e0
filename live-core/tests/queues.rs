//! Send-queue accounting, slow consumers and shared fan-out frames.

mod support;

use live_core::{Action, HubConfig, HubError, OutFrame};
use support::{Harness, drain};

fn small_queues(messages: usize, bytes: usize) -> Harness {
    let mut config = HubConfig::default();
    config.limits.max_queued_messages = messages;
    config.limits.max_queued_bytes = bytes;
    Harness::with_config(config)
}

#[test]
fn a_publish_shares_one_buffer_among_all_subscribers() {
    let mut h = Harness::new();
    let ids: Vec<_> = (0..5).map(|i| h.open(&format!("s{i}"))).collect();
    for &id in &ids {
        h.hub.subscribe(id, "t").unwrap();
    }
    assert_eq!(h.hub.publish("t", br#"{"big":"payload"}"#).unwrap(), 5);
    let actions = drain(&mut h.hub);
    let ptrs: Vec<*const u8> = actions
        .iter()
        .map(|a| match a {
            Action::Send {
                frame: OutFrame::Text(b),
                ..
            } => b.as_ptr(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ptrs.len(), 5);
    assert!(ptrs.iter().all(|&p| p == ptrs[0]));
}

#[test]
fn overflow_by_message_count_closes_only_the_slow_session() {
    let mut h = small_queues(3, 1 << 20);
    let fast = h.open("fast");
    let slow = h.open("slow");
    h.subscribe(fast, "t");
    h.subscribe(slow, "t");
    let mut closes = Vec::new();
    for i in 0..5 {
        h.hub.publish("t", i.to_string().as_bytes()).unwrap();
        for a in drain(&mut h.hub) {
            match a {
                Action::Send { id, frame } if id == fast => {
                    h.hub.handle_flushed(h.now, id, 1, frame.len()).unwrap()
                }
                Action::Send { .. } => {}
                Action::Close { id, code, .. } => closes.push((id, code)),
            }
        }
    }
    assert_eq!(closes, [(slow, 4008)]);
    assert_eq!(h.closed(), ["slow closed 4008 slow consumer"]);
    assert!(h.hub.contains(fast));
    assert_eq!(h.hub.queued(fast), Some((0, 0)));
    assert_eq!(h.hub.metrics().slow_consumer_closes, 1);
    assert_eq!(h.hub.subscriber_count("t"), 1);
}

#[test]
fn the_fourth_message_overflows_a_three_message_queue() {
    let mut h = small_queues(3, 1 << 20);
    let slow = h.open("slow");
    h.hub.subscribe(slow, "t").unwrap();
    for i in 0..3 {
        h.hub.publish("t", i.to_string().as_bytes()).unwrap();
    }
    assert_eq!(
        h.hub.queued(slow),
        Some((3, 3 * r#"{"topic":"t","data":0}"#.len()))
    );
    assert!(h.hub.contains(slow));
    h.hub.publish("t", b"3").unwrap();
    assert!(!h.hub.contains(slow));
    let lines = h.drain();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3], "slow <- close 4008 slow consumer");
}

#[test]
fn overflow_by_bytes_but_a_single_large_message_is_accepted() {
    let mut h = small_queues(100, 50);
    let a = h.open("a");
    h.hub.subscribe(a, "t").unwrap();
    let big = format!("\"{}\"", "x".repeat(100));
    assert_eq!(h.hub.publish("t", big.as_bytes()).unwrap(), 1);
    assert!(h.hub.contains(a));
    assert_eq!(h.hub.publish("t", b"1").unwrap(), 0);
    assert!(!h.hub.contains(a));
    assert_eq!(h.closed(), ["a closed 4008 slow consumer"]);
}

#[test]
fn flushing_makes_room_again() {
    let mut h = small_queues(2, 1 << 20);
    let a = h.open("a");
    h.hub.subscribe(a, "t").unwrap();
    for i in 0..10 {
        h.hub.publish("t", i.to_string().as_bytes()).unwrap();
        h.drain_flushed();
    }
    assert!(h.hub.contains(a));
    assert_eq!(h.hub.queued(a), Some((0, 0)));
}

#[test]
fn flushing_more_than_was_queued_is_an_error_and_changes_nothing() {
    let mut h = Harness::new();
    let a = h.open("a");
    h.hub.send(a, "t", b"1").unwrap();
    let before = h.hub.queued(a).unwrap();
    assert!(matches!(
        h.hub.handle_flushed(h.now, a, 2, 1),
        Err(HubError::FlushedTooMuch { .. })
    ));
    assert!(matches!(
        h.hub.handle_flushed(h.now, a, 1, before.1 + 1),
        Err(HubError::FlushedTooMuch { .. })
    ));
    assert_eq!(h.hub.queued(a), Some(before));
}

#[test]
fn error_frames_and_pongs_count_against_the_queue_too() {
    let mut h = small_queues(2, 1 << 20);
    let a = h.open("a");
    h.text(a, "{");
    h.frame(a, live_core::Frame::Ping(bytes::Bytes::new()));
    assert!(h.hub.contains(a));
    h.text(a, "{");
    assert!(!h.hub.contains(a));
    assert_eq!(h.closed(), ["a closed 4008 slow consumer"]);
}

#[test]
fn a_slow_publisher_subscribed_to_its_own_topic_is_closed_cleanly() {
    let mut h = small_queues(1, 1 << 20);
    let a = h.open("a");
    let b = h.open("b");
    h.subscribe(a, "t");
    h.subscribe(b, "t");
    h.publish(a, "t", "1");
    h.publish(a, "t", "2");
    let lines = h.drain();
    assert_eq!(
        lines,
        [
            r#"a <- {"topic":"t","data":1}"#,
            r#"b <- {"topic":"t","data":1}"#,
            "a <- close 4008 slow consumer",
            "b <- close 4008 slow consumer",
        ]
    );
}
