//! The SQLite store keeps the same contract as sync-core's `MemoryStore`, the
//! reference implementation: after any sequence of batches, both load the same
//! records, and a failed batch leaves nothing behind.

use proptest::prelude::*;
use serde_json::json;
use sync_core::store::{ClientRecord, IdExpiry, IdRecord, LogEntry, Trim};
use sync_core::testing::normalize;
use sync_core::{Batch, Change, MemoryStore, MutationResult, Recovered, Store, Timestamp};
use sync_sqlite::{Durability, SqliteStore};

const SCOPES: &[&str] = &["a", "b", "user:é"];
const CLIENTS: &[&str] = &["c1", "c2"];

fn result(cursor: u64, ok: bool) -> MutationResult {
    serde_json::from_value(if ok {
        json!({"ok": true, "cursor": cursor})
    } else {
        json!({"ok": false, "error": "refused", "code": "conflict"})
    })
    .expect("result json")
}

/// One abstract step; cursors and sequences are made dense when the step is
/// turned into a batch, as the engine would.
#[derive(Debug, Clone)]
enum Op {
    Changes {
        scope: usize,
        count: usize,
        mutations: usize,
    },
    Client {
        scope: usize,
        client: usize,
        keep_back: u64,
        ok: bool,
    },
    /// A mutation of `client` that wrote `count` changes; its record's
    /// result carries them, as the engine's does.
    Sequenced {
        scope: usize,
        client: usize,
        keep_back: u64,
        count: usize,
    },
    Id {
        scope: usize,
        id: u8,
    },
    /// A mutation deduplicated by id that wrote `count` changes; its
    /// record's result carries them, as the engine's does.
    IdChanges {
        scope: usize,
        id: u8,
        count: usize,
    },
    Expire {
        scope: usize,
        id: u8,
    },
    Trim {
        scope: usize,
        back: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..SCOPES.len(), 1..5usize, 1..3usize).prop_map(|(scope, count, mutations)| Op::Changes {
            scope,
            count,
            mutations
        }),
        (0..SCOPES.len(), 0..CLIENTS.len(), 0..3u64, any::<bool>()).prop_map(
            |(scope, client, keep_back, ok)| Op::Client {
                scope,
                client,
                keep_back,
                ok
            }
        ),
        (0..SCOPES.len(), 0..CLIENTS.len(), 0..3u64, 1..3usize).prop_map(
            |(scope, client, keep_back, count)| Op::Sequenced {
                scope,
                client,
                keep_back,
                count
            }
        ),
        (0..SCOPES.len(), 0..6u8).prop_map(|(scope, id)| Op::Id { scope, id }),
        (0..SCOPES.len(), 0..6u8, 1..3usize).prop_map(|(scope, id, count)| Op::IdChanges {
            scope,
            id,
            count
        }),
        (0..SCOPES.len(), 0..6u8).prop_map(|(scope, id)| Op::Expire { scope, id }),
        (0..SCOPES.len(), 0..4u64).prop_map(|(scope, back)| Op::Trim { scope, back }),
    ]
}

/// Turns ops into batches with the invariants the engine guarantees: dense
/// cursors per scope, increasing sequences per client, trims at most head + 1,
/// an id recorded again only once its record expired (in an earlier batch or
/// the same one), and a record made and expired within one batch left out of
/// it.
#[derive(Default)]
struct Gen {
    heads: [u64; 3],
    /// Heads as of the last batch: a trim never reaches past them.
    durable: [u64; 3],
    seqs: [[u64; 2]; 3],
    time: u64,
    /// Live id records: (scope, id) -> the cursor of the last change their
    /// mutation wrote, if any.
    live: std::collections::BTreeMap<(usize, u8), Option<u64>>,
}

impl Gen {
    /// The next sequence record of `client` in `scope`, keeping `keep_back`
    /// earlier results.
    fn client_record(
        &mut self,
        scope: usize,
        client: usize,
        keep_back: u64,
        result: MutationResult,
    ) -> ClientRecord {
        self.seqs[scope][client] += 1;
        let seq = self.seqs[scope][client];
        ClientRecord {
            scope: SCOPES[scope].to_owned(),
            client_id: CLIENTS[client].to_owned(),
            seq,
            result,
            keep_from: seq.saturating_sub(keep_back).max(1),
        }
    }

    /// One mutation writing `count` changes to `scope` (keys `PREFIX<cursor>`)
    /// into `b`; returns its result, which carries them, as the engine's does.
    fn mutation(
        &mut self,
        b: &mut Batch,
        scope: usize,
        count: usize,
        prefix: &str,
    ) -> MutationResult {
        let time = Timestamp::from_millis(1_700_000_000_000 + self.time);
        let first = self.heads[scope] + 1;
        let last = self.heads[scope] + count as u64;
        let mut changes = Vec::new();
        for cursor in first..=last {
            let change = Change {
                cursor,
                scope: SCOPES[scope].to_owned(),
                time,
                data: json!({"op": "put", "key": format!("{prefix}{cursor}"), "value": cursor}),
            };
            b.changes.push(LogEntry {
                change: change.clone(),
                group_end: last,
            });
            changes.push(change);
        }
        self.heads[scope] = last;
        serde_json::from_value(json!({"ok": true, "cursor": last, "changes": changes}))
            .expect("result json")
    }

    /// Records `record` as the live record of (scope, id): an earlier live
    /// one expires first, as when the engine sees a mutation retried after
    /// its id expired.
    fn record_id(&mut self, b: &mut Batch, scope: usize, id: u8, record: IdRecord) {
        self.expire_id(b, scope, id);
        self.live.insert((scope, id), record.last_change());
        b.ids.push(record);
    }

    /// Expires (scope, id): a record made in this batch is dropped from it,
    /// one of an earlier batch is named with its cursor.
    fn expire_id(&mut self, b: &mut Batch, scope: usize, id: u8) {
        let name = format!("m{id}");
        let Some(cursor) = self.live.remove(&(scope, id)) else {
            return;
        };
        let here = b
            .ids
            .iter()
            .position(|r| r.scope == SCOPES[scope] && r.id == name);
        match here {
            Some(i) => {
                b.ids.remove(i);
            }
            None => b.expired_ids.push(IdExpiry {
                scope: SCOPES[scope].to_owned(),
                id: name,
                cursor,
            }),
        }
    }

    fn batch(&mut self, ops: &[Op]) -> Batch {
        self.durable = self.heads;
        let mut b = Batch::default();
        for op in ops {
            self.time += 1;
            match *op {
                Op::Changes {
                    scope,
                    count,
                    mutations,
                } => {
                    let per = count.div_ceil(mutations).max(1);
                    let first = self.heads[scope] + 1;
                    let last = self.heads[scope] + count as u64;
                    for i in 0..count as u64 {
                        let cursor = first + i;
                        let group_end = (first + (i / per as u64 + 1) * per as u64 - 1).min(last);
                        b.changes.push(LogEntry {
                            change: Change {
                                cursor,
                                scope: SCOPES[scope].to_owned(),
                                time: Timestamp::from_millis(1_700_000_000_000 + self.time),
                                data: json!({"op": "put", "key": format!("k{cursor}"), "value": [cursor, "x"]}),
                            },
                            group_end,
                        });
                    }
                    self.heads[scope] = last;
                }
                Op::Client {
                    scope,
                    client,
                    keep_back,
                    ok,
                } => {
                    let record =
                        self.client_record(scope, client, keep_back, result(self.heads[scope], ok));
                    b.clients.push(record);
                }
                Op::Sequenced {
                    scope,
                    client,
                    keep_back,
                    count,
                } => {
                    let applied = self.mutation(&mut b, scope, count, "s");
                    let record = self.client_record(scope, client, keep_back, applied);
                    b.clients.push(record);
                }
                Op::Id { scope, id } => {
                    let record = IdRecord {
                        scope: SCOPES[scope].to_owned(),
                        id: format!("m{id}"),
                        result: result(self.heads[scope], true),
                        time: Timestamp::from_millis(1_700_000_000_000 + self.time),
                    };
                    self.record_id(&mut b, scope, id, record);
                }
                Op::IdChanges { scope, id, count } => {
                    let time = Timestamp::from_millis(1_700_000_000_000 + self.time);
                    let applied = self.mutation(&mut b, scope, count, "i");
                    let record = IdRecord {
                        scope: SCOPES[scope].to_owned(),
                        id: format!("m{id}"),
                        result: applied,
                        time,
                    };
                    self.record_id(&mut b, scope, id, record);
                }
                Op::Expire { scope, id } => self.expire_id(&mut b, scope, id),
                Op::Trim { scope, back } => b.trims.push(Trim {
                    scope: SCOPES[scope].to_owned(),
                    before: (self.durable[scope] + 1).saturating_sub(back).max(1),
                    base: json!({"trimmed_at": self.durable[scope]}),
                }),
            }
        }
        b
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn loads_what_the_memory_store_loads(batches in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..12)) {
        let mut memory = MemoryStore::new();
        let mut sqlite = SqliteStore::open_in_memory().expect("open");
        let mut generator = Gen::default();
        for ops in &batches {
            let batch = generator.batch(ops);
            memory.persist(&batch).expect("memory persist");
            sqlite.persist(&batch).expect("sqlite persist");
        }
        let expected = normalize(memory.load().expect("memory load"));
        prop_assert_eq!(&normalize(sqlite.load().expect("sqlite load")), &expected);
        for scope in SCOPES {
            let want = expected.iter().find(|s| s.scope == *scope).cloned();
            let got = sqlite.load_scope(scope).expect("load scope").and_then(|s| {
                normalize(Recovered { scopes: vec![s] }).pop()
            });
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn a_failed_batch_leaves_nothing_behind() {
    let mut store = SqliteStore::open_in_memory().expect("open");
    let mut generator = Gen::default();
    let first = generator.batch(&[Op::Changes {
        scope: 0,
        count: 3,
        mutations: 1,
    }]);
    store.persist(&first).expect("first batch");
    let before = store.load().expect("load");

    // A trim, an id record and a client record around a change whose cursor
    // is already stored: the whole transaction must roll back.
    let mut bad = generator.batch(&[
        Op::Trim { scope: 0, back: 2 },
        Op::Id { scope: 1, id: 1 },
        Op::Client {
            scope: 1,
            client: 0,
            keep_back: 0,
            ok: true,
        },
    ]);
    bad.changes.push(first.changes[2].clone());
    assert!(
        store.persist(&bad).is_err(),
        "a duplicate cursor must be refused"
    );
    assert_eq!(store.load().expect("load"), before);

    // The store keeps working after the failure.
    let next = generator.batch(&[Op::Changes {
        scope: 0,
        count: 1,
        mutations: 1,
    }]);
    store.persist(&next).expect("next batch");
    assert_eq!(store.head("a").expect("head"), 4);
}

#[test]
fn survives_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sync.db");
    let mut generator = Gen::default();
    let batches: Vec<Batch> = vec![
        generator.batch(&[
            Op::Changes {
                scope: 0,
                count: 4,
                mutations: 2,
            },
            Op::Client {
                scope: 0,
                client: 0,
                keep_back: 0,
                ok: true,
            },
        ]),
        generator.batch(&[Op::Id { scope: 2, id: 3 }, Op::Trim { scope: 0, back: 1 }]),
        generator.batch(&[
            Op::Changes {
                scope: 2,
                count: 1,
                mutations: 1,
            },
            Op::Client {
                scope: 0,
                client: 0,
                keep_back: 0,
                ok: false,
            },
        ]),
    ];
    let mut memory = MemoryStore::new();
    {
        let mut store = SqliteStore::open(&path, Durability::Full).expect("open");
        for b in &batches {
            store.persist(b).expect("persist");
            memory.persist(b).expect("memory");
        }
    }
    let mut reopened = SqliteStore::open(&path, Durability::Normal).expect("reopen");
    assert_eq!(
        normalize(reopened.load().expect("load")),
        normalize(memory.load().expect("memory load"))
    );
    assert_eq!(reopened.head("a").expect("head"), 4);
    assert_eq!(reopened.head("never").expect("head"), 0);
}

#[test]
fn refuses_a_file_from_a_newer_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", sync_sqlite::SCHEMA_VERSION + 1)
            .expect("set version");
    }
    let err = SqliteStore::open(&path, Durability::Full).expect_err("must refuse");
    assert!(
        matches!(err, sync_sqlite::Error::SchemaTooNew { found, .. } if found == sync_sqlite::SCHEMA_VERSION + 1),
        "{err}"
    );
}

#[test]
fn refuses_numbers_sqlite_cannot_hold() {
    let mut store = SqliteStore::open_in_memory().expect("open");
    let batch = Batch {
        changes: vec![LogEntry {
            change: Change {
                cursor: u64::MAX,
                scope: "a".into(),
                time: Timestamp::from_millis(0),
                data: json!(null),
            },
            group_end: u64::MAX,
        }],
        ..Batch::default()
    };
    let err = store.persist(&batch).expect_err("out of range");
    assert!(
        matches!(
            err,
            sync_sqlite::Error::Column(sync_core::store::columns::ColumnError::OutOfRange {
                what: "cursor",
                ..
            })
        ),
        "{err}"
    );
    assert!(store.load().expect("load").scopes.is_empty());
}

/// A mutation's client record is stored on its last change's row; trimming
/// that row away must keep the record (the client's sequence outlives the
/// log), across reopening the file.
#[test]
fn client_records_outlive_the_trim_of_their_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sync.db");
    let mut generator = Gen::default();
    let sequenced = |client| Op::Sequenced {
        scope: 0,
        client,
        keep_back: 1,
        count: 2,
    };
    let mut memory = MemoryStore::new();
    {
        let mut store = SqliteStore::open(&path, Durability::Full).expect("open");
        for ops in [
            vec![sequenced(0), sequenced(1), sequenced(0)],
            vec![sequenced(0), Op::Trim { scope: 0, back: 0 }],
            vec![Op::Trim { scope: 0, back: 0 }],
        ] {
            let batch = generator.batch(&ops);
            memory.persist(&batch).expect("memory persist");
            store.persist(&batch).expect("sqlite persist");
        }
    }
    let mut store = SqliteStore::open(&path, Durability::Full).expect("reopen");
    let loaded = normalize(store.load().expect("load"));
    assert_eq!(loaded, normalize(memory.load().expect("memory load")));
    let a = loaded.iter().find(|s| s.scope == "a").expect("scope a");
    assert!(a.changes.is_empty(), "the log was trimmed: {:?}", a.changes);
    let kept: Vec<(&str, u64)> = a
        .clients
        .iter()
        .map(|c| (c.client_id.as_str(), c.seq))
        .collect();
    assert_eq!(kept, [("c1", 2), ("c1", 3), ("c2", 1)]);
}
