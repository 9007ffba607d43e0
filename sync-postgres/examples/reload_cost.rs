//! What bringing one scope up to date costs a node when another node wrote
//! to it: a full `load_scope` (the whole log and every record) against
//! `load_scope_since` (what was written after the node's mark), on a scope
//! with a long history.
//!
//! ```sh
//! cargo run --release -p sync-postgres --example reload_cost -- \
//!     postgres://postgres@127.0.0.1/test 100000 16 20
//! ```
//! Arguments: URL, changes in the scope's history, changes per refresh,
//! refreshes of each kind. Works in a schema of its own, dropped at the end.

use std::time::{Duration, Instant};

use serde_json::json;
use sync_core::store::{ClientRecord, LogEntry, ScopeMark, ScopeUpdate};
use sync_core::{Batch, Change, MutationResult, Store, Timestamp};
use sync_postgres::{PgOptions, PgStore};

const SCOPE: &str = "doc";

/// Writes `count` changes after `head` as one batch, one mutation (and one
/// client record) per change, 32 clients in turn, as the engine would.
fn batch(head: u64, count: u64) -> Batch {
    let mut b = Batch::default();
    for cursor in head + 1..=head + count {
        b.changes.push(LogEntry {
            change: Change {
                cursor,
                scope: SCOPE.to_owned(),
                time: Timestamp::from_millis(1_700_000_000_000 + cursor),
                data: json!({"op": "put", "key": format!("k{}", cursor % 1000), "value": {"n": cursor, "text": "a todo item"}}),
            },
            group_end: cursor,
        });
        let result: MutationResult =
            serde_json::from_value(json!({"ok": true, "cursor": cursor})).expect("result");
        b.clients.push(ClientRecord {
            scope: SCOPE.to_owned(),
            client_id: format!("c{}", cursor % 32),
            seq: cursor / 32 + 1,
            result,
            keep_from: cursor / 32 + 1,
        });
    }
    b
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1/test".into());
    let history: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let per_refresh: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20);
    let schema = format!("reload_cost_{}", std::process::id());
    let options = || PgOptions::in_schema(schema.clone()).with_timeout(Duration::from_secs(120));

    let mut writer = PgStore::connect(&url, options()).expect("connect the writer");
    let mut reader = PgStore::connect(&url, options()).expect("connect the reader");
    writer.load().expect("writer load");
    let mut head = 0u64;
    while head < history {
        let n = (history - head).min(1000);
        writer.persist(&batch(head, n)).expect("history");
        head += n;
    }
    reader.load().expect("reader load");

    let (mut full, mut delta) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for wants_delta in [true, false] {
            let held = ScopeMark {
                head,
                first_kept: 1,
            };
            writer
                .persist(&batch(head, per_refresh))
                .expect("a refresh's changes");
            head += per_refresh;
            let started = Instant::now();
            if wants_delta {
                match reader.load_scope_since(SCOPE, held).expect("delta") {
                    ScopeUpdate::Delta(d) => assert_eq!(d.changes.len() as u64, per_refresh),
                    ScopeUpdate::Full(_) => panic!("expected a delta"),
                }
                delta.push(started.elapsed());
            } else {
                let records = reader.load_scope(SCOPE).expect("full").expect("records");
                assert_eq!(records.changes.len() as u64, head);
                full.push(started.elapsed());
            }
        }
    }
    let (f, d) = (median(full), median(delta));
    println!(
        "history {history} changes, {per_refresh} new per refresh, {rounds} refreshes each: \
         full load_scope median {:.2} ms, load_scope_since median {:.3} ms, ratio {:.0}",
        f.as_secs_f64() * 1e3,
        d.as_secs_f64() * 1e3,
        f.as_secs_f64() / d.as_secs_f64()
    );
    drop((writer, reader));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect to drop the schema");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .expect("drop the schema");
    });
}
