//! What one group commit costs: a batch of `n` one-change mutations, each
//! with its client sequence record, as the engine hands it to the store.
//!
//! And what a trim of a long log costs.
//!
//! `cargo bench -p sync-sqlite --bench persist`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use sync_core::store::{ClientRecord, LogEntry, Trim};
use sync_core::{Batch, Change, MutationResult, Store, Timestamp};
use sync_sqlite::{Durability, SqliteStore};

/// Builds the next batch of `n` mutations by `clients` clients in one scope.
struct Workload {
    cursor: u64,
    seqs: Vec<u64>,
}

impl Workload {
    fn batch(&mut self, n: usize) -> Batch {
        let mut batch = Batch::default();
        for _ in 0..n {
            self.cursor += 1;
            let client = self.cursor as usize % self.seqs.len();
            self.seqs[client] += 1;
            let seq = self.seqs[client];
            let change = Change {
                cursor: self.cursor,
                scope: "load".into(),
                time: Timestamp::from_millis(1_795_328_895_000),
                data: json!({"op": "put", "key": format!("k{}", self.cursor), "value": {"n": self.cursor}}),
            };
            batch.changes.push(LogEntry {
                change: change.clone(),
                group_end: self.cursor,
            });
            batch.clients.push(ClientRecord {
                scope: "load".into(),
                client_id: format!("client-{client}"),
                seq,
                result: serde_json::from_value::<MutationResult>(
                    // As the engine records it: the result carries the
                    // mutation's changes.
                    json!({"ok": true, "cursor": self.cursor, "changes": [change]}),
                )
                .expect("result"),
                keep_from: seq.saturating_sub(1023).max(1),
            });
        }
        batch
    }
}

fn persist(c: &mut Criterion) {
    let mut group = c.benchmark_group("persist");
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        for n in [1usize, 16, 100] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut store =
                SqliteStore::open(dir.path().join("bench.db"), durability).expect("open");
            let mut work = Workload {
                cursor: 0,
                seqs: vec![0; 32],
            };
            // A log that is not empty, as in a running server, and clients
            // past the 1024 results kept, so records are pruned as they go.
            for _ in 0..400 {
                store.persist(&work.batch(100)).expect("warm");
            }
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter_batched(
                    || work.batch(n),
                    |batch| store.persist(&batch).expect("persist"),
                    criterion::BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

/// A trim of the whole log: the client records riding on its rows move to
/// the `clients` table (only those a prune keeps), then the rows go.
fn trim(c: &mut Criterion) {
    let mut group = c.benchmark_group("trim");
    group.sample_size(10);
    for mutations in [10_000u64, 60_000] {
        group.throughput(Throughput::Elements(mutations));
        group.bench_with_input(
            BenchmarkId::new("whole_log", mutations),
            &mutations,
            |b, &mutations| {
                b.iter_batched(
                    || {
                        let dir = tempfile::tempdir().expect("tempdir");
                        let mut store =
                            SqliteStore::open(dir.path().join("bench.db"), Durability::Normal)
                                .expect("open");
                        let mut work = Workload {
                            cursor: 0,
                            seqs: vec![0; 32],
                        };
                        for _ in 0..mutations / 100 {
                            store.persist(&work.batch(100)).expect("fill");
                        }
                        let trim = Batch {
                            trims: vec![Trim {
                                scope: "load".into(),
                                before: work.cursor + 1,
                                base: json!({}),
                            }],
                            ..Batch::default()
                        };
                        (dir, store, trim)
                    },
                    |(dir, mut store, trim)| {
                        store.persist(&trim).expect("trim");
                        (dir, store)
                    },
                    criterion::BatchSize::PerIteration,
                )
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = persist, trim
}
criterion_main!(benches);
