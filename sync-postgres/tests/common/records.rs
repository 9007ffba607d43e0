//! Random batches shaped like the engine's (dense cursors, increasing
//! sequences, trims no further than the durable head), for the store tests.

use proptest::prelude::*;
use serde_json::json;
use sync_core::store::{ClientRecord, IdExpiry, IdRecord, LogEntry, Trim};
use sync_core::{Batch, Change, MutationResult, Timestamp};

pub const SCOPES: [&str; 3] = ["a", "b", "user:é"];
pub const CLIENTS: [&str; 2] = ["c1", "c2"];

pub fn result(cursor: u64, ok: bool) -> MutationResult {
    let v = if ok {
        json!({"ok": true, "cursor": cursor})
    } else {
        json!({"ok": false, "error": "refused", "code": "conflict"})
    };
    serde_json::from_value(v).expect("result json")
}

/// One abstract step, made concrete (dense cursors, increasing sequences,
/// trims no further than the durable head) by [`Gen`], as the engine would.
#[derive(Debug, Clone)]
pub enum Op {
    Changes(usize, u64, u64),
    Client(usize, usize, u64, bool),
    Id(usize, u8),
    Expire(usize, u8),
    Trim(usize, u64),
}

pub fn op() -> impl Strategy<Value = Op> {
    let s = 0..SCOPES.len();
    prop_oneof![
        (s.clone(), 1..5u64, 1..3u64).prop_map(|(s, n, m)| Op::Changes(s, n, m)),
        (s.clone(), 0..CLIENTS.len(), 0..3u64, any::<bool>())
            .prop_map(|(s, c, k, ok)| Op::Client(s, c, k, ok)),
        (s.clone(), 0..6u8).prop_map(|(s, id)| Op::Id(s, id)),
        (s.clone(), 0..6u8).prop_map(|(s, id)| Op::Expire(s, id)),
        (s, 0..4u64).prop_map(|(s, back)| Op::Trim(s, back)),
    ]
}

#[derive(Default)]
pub struct Gen {
    pub heads: [u64; 3],
    pub durable: [u64; 3],
    pub seqs: [[u64; 2]; 3],
    pub time: u64,
}

impl Gen {
    pub fn batch(&mut self, ops: &[Op]) -> Batch {
        self.durable = self.heads;
        let mut b = Batch::default();
        for op in ops {
            self.time += 1;
            let time = Timestamp::from_millis(1_700_000_000_000 + self.time);
            match *op {
                Op::Changes(s, count, mutations) => {
                    let per = count.div_ceil(mutations);
                    let first = self.heads[s] + 1;
                    let last = self.heads[s] + count;
                    for i in 0..count {
                        let cursor = first + i;
                        b.changes.push(LogEntry {
                            change: Change {
                                cursor,
                                scope: SCOPES[s].to_owned(),
                                time,
                                data: json!({"op": "put", "key": format!("k{cursor}"), "value": [cursor, 1.5, "x\u{0}"]}),
                            },
                            group_end: (first + (i / per + 1) * per - 1).min(last),
                        });
                    }
                    self.heads[s] = last;
                }
                Op::Client(s, c, keep_back, ok) => {
                    self.seqs[s][c] += 1;
                    let seq = self.seqs[s][c];
                    b.clients.push(ClientRecord {
                        scope: SCOPES[s].to_owned(),
                        client_id: CLIENTS[c].to_owned(),
                        seq,
                        result: result(self.heads[s], ok),
                        keep_from: seq.saturating_sub(keep_back).max(1),
                    });
                }
                Op::Id(s, id) => b.ids.push(IdRecord {
                    scope: SCOPES[s].to_owned(),
                    id: format!("m{id}"),
                    result: result(self.heads[s], true),
                    time,
                }),
                Op::Expire(s, id) => b.expired_ids.push(IdExpiry {
                    scope: SCOPES[s].to_owned(),
                    id: format!("m{id}"),
                    cursor: None,
                }),
                Op::Trim(s, back) => b.trims.push(Trim {
                    scope: SCOPES[s].to_owned(),
                    before: (self.durable[s] + 1).saturating_sub(back).max(1),
                    base: json!({"trimmed_at": self.durable[s]}),
                }),
            }
        }
        b
    }
}
