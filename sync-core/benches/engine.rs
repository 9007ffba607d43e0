//! Criterion benchmarks of the sync engine with `MemoryStore`: push
//! throughput (single mutations and batches of 100), a pull of 1000 changes,
//! and a snapshot of 10 000 keys. Results and commands are in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use sync_core::{
    Engine, EngineConfig, KvApp, MemoryStore, Mutation, PullRequest, RequestId, SnapshotRequest,
    Store, Timestamp,
};

fn put(client: &str, seq: u64, key: u64) -> Mutation {
    Mutation {
        id: format!("{client}:{seq}"),
        scope: "bench".into(),
        name: "put".into(),
        args: Some(
            json!({"key": format!("key-{key}"), "value": {"title": "buy milk", "done": false}}),
        ),
        client_id: Some(client.into()),
        seq: Some(seq),
    }
}

/// Persists and advances everything ready, draining the outputs.
fn commit(e: &mut Engine<KvApp>, store: &mut MemoryStore) {
    while let Some(ready) = e.poll_ready() {
        store.persist(&ready.persist).unwrap();
        e.advance(ready.number).unwrap();
    }
    while let Some(out) = e.poll_output() {
        black_box(out);
    }
}

fn filled(n: u64) -> (Engine<KvApp>, MemoryStore) {
    let mut e = Engine::new(KvApp::new(), EngineConfig::default());
    let mut store = MemoryStore::new();
    for chunk in 0..n.div_ceil(100) {
        let muts = (0..100)
            .map(|i| chunk * 100 + i)
            .filter(|&i| i < n)
            .map(|i| put("loader", i + 1, i))
            .collect();
        e.handle_push(Timestamp(0), RequestId(chunk), muts);
        commit(&mut e, &mut store);
    }
    (e, store)
}

fn push(c: &mut Criterion) {
    let mut g = c.benchmark_group("push");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_mutation_commit_each", |b| {
        let mut e = Engine::new(KvApp::new(), EngineConfig::default());
        let mut store = MemoryStore::new();
        let mut seq = 0;
        b.iter(|| {
            seq += 1;
            e.handle_push(
                Timestamp(seq),
                RequestId(seq),
                vec![put("c", seq, seq % 1000)],
            );
            commit(&mut e, &mut store);
        });
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("100_single_pushes_group_commit", |b| {
        let mut e = Engine::new(KvApp::new(), EngineConfig::default());
        let mut store = MemoryStore::new();
        let mut seq = 0;
        b.iter(|| {
            for _ in 0..100 {
                seq += 1;
                e.handle_push(
                    Timestamp(seq),
                    RequestId(seq),
                    vec![put("c", seq, seq % 1000)],
                );
            }
            commit(&mut e, &mut store);
        });
    });
    g.bench_function("batch_of_100", |b| {
        let mut e = Engine::new(KvApp::new(), EngineConfig::default());
        let mut store = MemoryStore::new();
        let seq = std::cell::Cell::new(0u64);
        b.iter_batched(
            || {
                let s = seq.get();
                seq.set(s + 100);
                (0..100)
                    .map(|i| put("c", s + i + 1, (s + i) % 1000))
                    .collect::<Vec<_>>()
            },
            |muts| {
                e.handle_push(Timestamp(seq.get()), RequestId(seq.get()), muts);
                commit(&mut e, &mut store);
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn pull(c: &mut Criterion) {
    let (e, _store) = filled(1000);
    let mut g = c.benchmark_group("pull");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000_changes_one_page", |b| {
        let req = PullRequest {
            scope: "bench".into(),
            cursor: 0,
            limit: 1000,
            client_id: None,
        };
        b.iter(|| {
            let page = e.handle_pull(black_box(&req)).unwrap();
            assert_eq!(page.changes.len(), 1000);
            black_box(page)
        });
    });
    g.bench_function("1000_changes_one_page_json", |b| {
        let req = PullRequest {
            scope: "bench".into(),
            cursor: 0,
            limit: 1000,
            client_id: None,
        };
        b.iter(|| black_box(e.handle_pull_encoded(black_box(&req))));
    });
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    let (e, _store) = filled(10_000);
    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Elements(10_000));
    let req = SnapshotRequest {
        scope: "bench".into(),
        client_id: None,
    };
    g.bench_function("10000_keys", |b| {
        b.iter(|| black_box(e.handle_snapshot(black_box(&req))));
    });
    g.bench_function("10000_keys_json", |b| {
        b.iter(|| black_box(e.handle_snapshot_encoded(black_box(&req))));
    });
    g.finish();
}

criterion_group!(benches, push, pull, snapshot);
criterion_main!(benches);
