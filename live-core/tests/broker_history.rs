//! History kept by a broker (`HubConfig::broker_history`), as transcripts and
//! against a model: publications leave as `Append` and come back numbered;
//! a recovering subscribe is subscribed first, reads after, and gets every
//! publication after its position once and in order, whatever the order in
//! which the read's answer and the live deliveries arrive.

mod support;

use bytes::Bytes;
use live_core::{Event, HistoryLimits, HistoryRead, HistoryRule, HubConfig, SessionId};
use proptest::prelude::*;
use support::{Harness, since, subscribed};

fn config() -> HubConfig {
    let mut c = HubConfig::default();
    c.history = vec![HistoryRule::new("chat:*", HistoryLimits::new(100, None))];
    c.broker_history = true;
    c
}

fn line(who: &str, topic: &str, offset: u64) -> String {
    format!(r#"{who} <- {{"topic":"{topic}","data":{offset},"offset":{offset}}}"#)
}

/// The read request the hub asked for (and nothing else it asked).
fn read_request(h: &mut Harness) -> (u64, Option<u64>) {
    let reads: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ReadHistory { request, after, .. } => Some((request, after)),
            _ => None,
        })
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    reads[0]
}

fn read(epoch: &str, last: u64, from: u64) -> HistoryRead {
    HistoryRead {
        epoch: epoch.into(),
        last,
        entries: (from..=last)
            .map(|o| (o, Bytes::from(o.to_string())))
            .collect(),
    }
}

fn deliver(h: &mut Harness, topic: &str, epoch: &str, offset: u64) {
    let now = h.now;
    h.hub
        .deliver_numbered(now, topic, epoch, offset, offset.to_string().as_bytes())
        .unwrap();
}

#[test]
fn publishes_go_to_the_broker_and_come_back_numbered() {
    let mut h = Harness::with_config(config());
    let a = h.open("a");
    h.subscribe(a, "chat:1");
    h.subscribe(a, "news");
    h.events();
    h.publish(a, "chat:1", "1");
    h.publish(a, "news", "2");
    assert_eq!(h.drain(), [r#"a <- {"topic":"news","data":2}"#]);
    let appends: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Append {
                topic,
                data,
                limits,
            } => Some((topic, data, limits)),
            _ => None,
        })
        .collect();
    assert_eq!(
        appends,
        [(
            "chat:1".to_owned(),
            Bytes::from_static(b"1"),
            HistoryLimits::new(100, None)
        )]
    );
    // The server's own publish too.
    assert_eq!(h.hub.publish("chat:1", b"3"), Ok(0));
    assert!(matches!(&h.events()[..], [Event::Append { .. }]));
    deliver(&mut h, "chat:1", "e1", 7);
    assert_eq!(h.drain(), [line("a", "chat:1", 7)]);
    assert_eq!(h.hub.history_position("chat:1"), Some(("e1", 7)));
    // When the broker cannot take it, the node delivers it alone.
    let now = h.now;
    h.hub.deliver_unnumbered(now, "chat:1", b"8").unwrap();
    assert_eq!(h.drain(), [r#"a <- {"topic":"chat:1","data":8}"#]);
    assert_eq!(h.hub.metrics().history_unnumbered, 1);
    // Garbage from the broker is refused, never delivered.
    assert!(
        h.hub
            .deliver_numbered(now, "chat:1", "e1", 9, b"{")
            .is_err()
    );
    assert!(h.drain().is_empty());
}

#[test]
fn a_recovering_subscribe_reads_after_subscribing_and_drops_what_overlaps() {
    let mut h = Harness::with_config(config());
    let a = h.open("a");
    let b = h.open("b");
    h.subscribe(a, "chat:1");
    h.events();
    h.text(b, &since("chat:1", "e1", 2));
    let (request, after) = read_request(&mut h);
    assert_eq!(after, Some(2));
    // Live publications while the read is out: a hears them, b waits.
    deliver(&mut h, "chat:1", "e1", 5);
    deliver(&mut h, "chat:1", "e1", 6);
    assert_eq!(h.drain(), [line("a", "chat:1", 5), line("a", "chat:1", 6)]);
    // The read saw up to 5; 6 was held; 5's live copy is not sent twice.
    let now = h.now;
    h.hub
        .handle_history_read(now, request, Some(read("e1", 5, 3)));
    assert_eq!(
        h.drain(),
        [
            subscribed("b", "chat:1", "e1", 5, true),
            line("b", "chat:1", 3),
            line("b", "chat:1", 4),
            line("b", "chat:1", 5),
            line("b", "chat:1", 6),
        ]
    );
    deliver(&mut h, "chat:1", "e1", 7);
    assert_eq!(h.drain(), [line("a", "chat:1", 7), line("b", "chat:1", 7)]);
    assert_eq!(h.hub.metrics().recoveries, 1);
}

#[test]
fn a_live_copy_arriving_after_the_read_is_not_sent_twice() {
    let mut h = Harness::with_config(config());
    let b = h.open("b");
    h.text(b, &since("chat:1", "e1", 0));
    let (request, _) = read_request(&mut h);
    let now = h.now;
    h.hub
        .handle_history_read(now, request, Some(read("e1", 2, 1)));
    deliver(&mut h, "chat:1", "e1", 1);
    deliver(&mut h, "chat:1", "e1", 2);
    deliver(&mut h, "chat:1", "e1", 3);
    assert_eq!(
        h.drain(),
        [
            subscribed("b", "chat:1", "e1", 2, true),
            line("b", "chat:1", 1),
            line("b", "chat:1", 2),
            line("b", "chat:1", 3),
        ]
    );
}

#[test]
fn a_position_the_broker_lost_is_not_recovered() {
    let mut h = Harness::with_config(config());
    let b = h.open("b");
    let c = h.open("c");
    let d = h.open("d");
    // Another epoch (the keys expired), a trimmed start, a failed read.
    h.text(b, &since("chat:1", "old", 3));
    let (rb, _) = read_request(&mut h);
    h.text(c, &since("chat:1", "e2", 1));
    let (rc, _) = read_request(&mut h);
    h.text(d, &since("chat:1", "e2", 1));
    let (rd, _) = read_request(&mut h);
    deliver(&mut h, "chat:1", "e2", 6);
    let now = h.now;
    h.hub.handle_history_read(now, rb, Some(read("e2", 5, 1)));
    h.hub.handle_history_read(now, rc, Some(read("e2", 5, 4)));
    h.hub.handle_history_read(now, rd, None);
    assert_eq!(
        h.drain(),
        [
            subscribed("b", "chat:1", "e2", 5, false),
            line("b", "chat:1", 6),
            subscribed("c", "chat:1", "e2", 5, false),
            line("c", "chat:1", 6),
            subscribed("d", "chat:1", "", 0, false),
            line("d", "chat:1", 6),
        ]
    );
    assert_eq!(h.hub.metrics().recoveries_failed, 3);
}

#[test]
fn history_true_asks_for_the_position_only_and_leaving_forgets_the_read() {
    let mut h = Harness::with_config(config());
    let a = h.open("a");
    h.text(
        a,
        r#"{"topic":"subscribe","data":{"topic":"chat:x","history":true}}"#,
    );
    let (request, after) = read_request(&mut h);
    assert_eq!(after, None);
    let now = h.now;
    h.hub.handle_history_read(
        now,
        request,
        Some(HistoryRead {
            epoch: "e".into(),
            last: 4,
            entries: vec![],
        }),
    );
    assert_eq!(h.drain(), [subscribed("a", "chat:x", "e", 4, false)]);
    h.text(a, &since("chat:x", "e", 4));
    let (request, _) = read_request(&mut h);
    h.unsubscribe(a, "chat:x");
    h.hub
        .handle_history_read(now, request, Some(read("e", 4, 5)));
    assert!(h.drain().is_empty());
    assert_eq!(h.hub.history_reads_waiting(), 0);
    // An answer nobody asked for is ignored.
    h.hub.handle_history_read(now, 999, None);
    assert!(h.drain().is_empty());
}

#[test]
fn sync_topics_and_topics_without_history_stay_on_the_node() {
    let mut c = config();
    c.history
        .push(HistoryRule::new("sync:*", HistoryLimits::new(5, None)));
    let h = Harness::with_config(c);
    assert_eq!(h.hub.numbered_by_broker("sync:doc"), None);
    assert_eq!(h.hub.numbered_by_broker("news"), None);
    assert!(h.hub.numbered_by_broker("chat:1").is_some());
}

/// What arrives at the hub after the subscribe, in some order.
#[derive(Debug, Clone)]
enum Step {
    Live(u64),
    Answer,
}

proptest! {
    /// A broker log of `n` publications; `k` of them published before the
    /// subscribe naming offset `s`; the node's broker subscription delivers
    /// from `j + 1` on (j >= k: it took effect later); the read saw up to
    /// `r >= j` (it was started after the subscription took effect); the
    /// answer arrives anywhere among the live deliveries. The recovering
    /// session gets `s+1..=n`, each once, in order; a plain subscriber gets
    /// `j+1..=n`.
    #[test]
    fn recovery_through_the_broker_is_exactly_once_and_in_order(
        n in 0u64..12,
        picks in (0u64..100, 0u64..100, 0u64..100, 0u64..100, 0usize..100),
    ) {
        let (pk, ps, pj, pr, pa) = picks;
        let k = pk % (n + 1);
        let s = ps % (k + 1);
        let j = k + pj % (n - k + 1);
        let r = j + pr % (n - j + 1);
        let live: Vec<u64> = (j + 1..=n).collect();
        let at = pa % (live.len() + 1);
        let mut steps: Vec<Step> = live.iter().copied().map(Step::Live).collect();
        steps.insert(at, Step::Answer);

        let mut h = Harness::with_config(config());
        let plain = h.open("p");
        h.subscribe(plain, "chat:t");
        let who: SessionId = h.open("w");
        h.text(who, &since("chat:t", "e", s));
        let (request, after) = read_request(&mut h);
        prop_assert_eq!(after, Some(s));
        for step in steps {
            match step {
                Step::Live(o) => deliver(&mut h, "chat:t", "e", o),
                Step::Answer => {
                    let now = h.now;
                    h.hub.handle_history_read(now, request, Some(read("e", r, s + 1)));
                }
            }
        }
        let lines = h.drain();
        let of = |who: &str| -> Vec<u64> {
            lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("{who} <- ")))
                .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
                .filter(|v| v["topic"] == "chat:t")
                .map(|v| v["offset"].as_u64().unwrap())
                .collect()
        };
        prop_assert_eq!(of("w"), (s + 1..=n).collect::<Vec<_>>());
        prop_assert_eq!(of("p"), (j + 1..=n).collect::<Vec<_>>());
        let reply = lines.iter().find(|l| l.starts_with("w <- ")).unwrap();
        prop_assert_eq!(reply, &subscribed("w", "chat:t", "e", r, true));
    }
}

#[test]
fn a_slow_read_holds_more_than_a_send_queue_and_the_replay_is_paced() {
    // Queue of 4, history of 100: while the read is out, 10 live
    // publications wait for b (more than its queue, less than the history
    // plus the queue); the replay then goes out as b reads it.
    let mut c = config();
    c.limits.max_queued_messages = 4;
    let mut h = Harness::with_config(c);
    let b = h.open("b");
    h.text(b, &since("chat:1", "e1", 0));
    let (request, _) = read_request(&mut h);
    for offset in 1..=10 {
        deliver(&mut h, "chat:1", "e1", offset);
    }
    assert!(h.hub.contains(b), "held, not closed");
    let now = h.now;
    h.hub
        .handle_history_read(now, request, Some(read("e1", 3, 1)));
    let lines = h.read_all(b);
    let mut want = vec![subscribed("b", "chat:1", "e1", 3, true)];
    want.extend((1..=10).map(|o| line("b", "chat:1", o)));
    assert_eq!(lines, want);
    // The history's size plus a queue: past that, b is closed as slow.
    let c2 = {
        let mut c = config();
        c.limits.max_queued_messages = 4;
        c.history = vec![HistoryRule::new("chat:*", HistoryLimits::new(5, None))];
        c
    };
    let mut h = Harness::with_config(c2);
    let b = h.open("b");
    h.text(b, &since("chat:1", "e1", 0));
    read_request(&mut h);
    for offset in 1..=9 {
        deliver(&mut h, "chat:1", "e1", offset);
    }
    assert!(h.hub.contains(b));
    deliver(&mut h, "chat:1", "e1", 10);
    assert!(!h.hub.contains(b), "closed as slow past 5 + 4 held");
}
