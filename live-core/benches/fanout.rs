//! Criterion benchmarks of the hub's hot paths: one publish fanned out to 1, 100
//! and 10 000 subscribers, the same with topic history off, on, and
//! configured for other topics only, and subscribe/unsubscribe churn.
//!
//! Run: `cargo bench -p live-core --bench fanout`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use live_core::{Frame, HistoryLimits, HistoryRule, Hub, HubConfig, SessionId};

/// A hub with unbounded queues (so the benchmark needs no flush reports) and
/// `n` active sessions.
fn hub_with_sessions(n: usize) -> (Hub<()>, Vec<SessionId>, Instant) {
    hub_with_history(n, Vec::new())
}

/// As [`hub_with_sessions`], with these history rules.
fn hub_with_history(n: usize, history: Vec<HistoryRule>) -> (Hub<()>, Vec<SessionId>, Instant) {
    let mut config = HubConfig::default();
    config.history = history;
    config.limits.max_queued_messages = usize::MAX;
    config.limits.max_queued_bytes = usize::MAX;
    let mut hub = Hub::new(config, 1);
    let now = Instant::now();
    let ids = (0..n)
        .map(|_| hub.handle_open_authenticated(now, ()))
        .collect();
    (hub, ids, now)
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    let data = br#"{"user":"alice","text":"hello, world","ts":1732250000000}"#;
    for n in [1usize, 100, 10_000] {
        let (mut hub, ids, _) = hub_with_sessions(n);
        for &id in &ids {
            hub.subscribe(id, "room:lobby").unwrap();
        }
        group.bench_with_input(BenchmarkId::new("publish_and_drain", n), &n, |b, _| {
            b.iter(|| {
                let delivered = hub.publish("room:lobby", data).unwrap();
                let mut drained = 0;
                while let Some(action) = hub.poll_action() {
                    black_box(&action);
                    drained += 1;
                }
                assert_eq!(delivered, drained);
            })
        });
    }
    // The hub's share alone: the drain (and the reference-count decrements of
    // dropping the frames, which an adapter pays after writing) is left untimed.
    for n in [1usize, 100, 10_000] {
        let (mut hub, ids, _) = hub_with_sessions(n);
        for &id in &ids {
            hub.subscribe(id, "room:lobby").unwrap();
        }
        let mut sink = Vec::with_capacity(n);
        group.bench_with_input(BenchmarkId::new("publish_only", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    black_box(hub.publish("room:lobby", data).unwrap());
                    total += started.elapsed();
                    sink.extend(std::iter::from_fn(|| hub.poll_action()));
                    sink.clear();
                }
                total
            })
        });
    }
    group.finish();
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    let topics: Vec<String> = (0..100).map(|i| format!("room:{i}")).collect();
    let (mut hub, ids, now) = hub_with_sessions(1_000);
    group.bench_function("server_subscribe_unsubscribe_1000", |b| {
        b.iter(|| {
            for (i, &id) in ids.iter().enumerate() {
                hub.subscribe(id, &topics[i % topics.len()]).unwrap();
            }
            for (i, &id) in ids.iter().enumerate() {
                hub.unsubscribe(id, &topics[i % topics.len()]).unwrap();
            }
        })
    });
    let subs: Vec<Bytes> = topics
        .iter()
        .map(|t| {
            Bytes::from(format!(
                r#"{{"topic":"subscribe","data":{{"topic":"{t}"}}}}"#
            ))
        })
        .collect();
    let unsubs: Vec<Bytes> = topics
        .iter()
        .map(|t| {
            Bytes::from(format!(
                r#"{{"topic":"unsubscribe","data":{{"topic":"{t}"}}}}"#
            ))
        })
        .collect();
    group.bench_function("client_frames_subscribe_unsubscribe_1000", |b| {
        b.iter(|| {
            for (i, &id) in ids.iter().enumerate() {
                hub.handle_frame(now, id, Frame::Text(subs[i % subs.len()].clone()));
            }
            for (i, &id) in ids.iter().enumerate() {
                hub.handle_frame(now, id, Frame::Text(unsubs[i % unsubs.len()].clone()));
            }
            assert_eq!(hub.metrics().subscriptions, 0);
        })
    });
    group.finish();
}

/// Publish and drain with history off, on for the topic (100 kept), and on
/// for another pattern only (the rule is matched on every publish).
fn history(c: &mut Criterion) {
    let mut group = c.benchmark_group("history");
    let data = br#"{"user":"alice","text":"hello, world","ts":1732250000000}"#;
    let keep = HistoryLimits::new(100, None);
    let cases = [
        ("off", Vec::new()),
        ("on", vec![HistoryRule::new("room:*", keep)]),
        ("other_topics", vec![HistoryRule::new("chat:*", keep)]),
    ];
    for (label, rules) in cases {
        for n in [100usize, 10_000] {
            let (mut hub, ids, now) = hub_with_history(n, rules.clone());
            for &id in &ids {
                hub.subscribe(id, "room:lobby").unwrap();
            }
            let id = BenchmarkId::new(format!("publish_and_drain_{label}"), n);
            group.bench_with_input(id, &n, |b, _| {
                b.iter(|| {
                    let delivered = hub.publish_at(now, "room:lobby", data).unwrap();
                    let mut drained = 0;
                    while let Some(action) = hub.poll_action() {
                        black_box(&action);
                        drained += 1;
                    }
                    assert_eq!(delivered, drained);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, publish, history, churn);
criterion_main!(benches);
