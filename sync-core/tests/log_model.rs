//! Property test of the log as seen through the engine (append, pull with
//! pagination, trim, cursor-too-old, restart) against a simple model.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use sync_core::{
    Engine, EngineConfig, KvApp, MemoryStore, PullRequest, RequestId, Store, Timestamp,
};

#[derive(Debug, Clone)]
enum Op {
    /// A mutation writing this many changes (0..=3).
    Push(u8),
    Flush,
    Trim(u64),
    Pull(u64, u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..=3).prop_map(Op::Push),
        2 => Just(Op::Flush),
        1 => (0u64..40).prop_map(Op::Trim),
        4 => (0u64..40, 0u64..6).prop_map(|(c, l)| Op::Pull(c, l)),
        1 => Just(Op::Restart),
    ]
}

fn multi_app() -> KvApp {
    app().with("multi", |_, m| {
        let n = m.args.as_ref().and_then(|a| a["n"].as_u64()).unwrap_or(0);
        Ok((0..n)
            .map(|i| KvApp::put_change(&format!("k{i}"), json!(m.seq)))
            .collect())
    })
}

/// The model: durable groups of cursors and the first kept cursor.
#[derive(Default)]
struct Model {
    /// (cursor, group_end) of durable changes, including trimmed ones.
    durable: Vec<(u64, u64)>,
    /// Not yet durable.
    open: Vec<(u64, u64)>,
    first_kept: u64,
}

impl Model {
    fn head(&self) -> u64 {
        self.durable.last().map_or(0, |c| c.0)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut store = MemoryStore::new();
        let mut e = Engine::new(multi_app(), EngineConfig::default());
        let mut m = Model { first_kept: 1, ..Model::default() };
        let mut seq = 0u64;
        let mut durable_seq = 0u64;
        let mut next_cursor = 1u64;
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(n) => {
                    seq += 1;
                    let mu = common::seq("s", "c", seq, "multi", json!({"n": n}));
                    e.handle_push(Timestamp(i as u64), RequestId(i as u64), vec![mu]);
                    let end = next_cursor + u64::from(n);
                    for c in next_cursor..end {
                        m.open.push((c, end - 1));
                    }
                    next_cursor = end;
                }
                Op::Flush => {
                    flush(&mut e, &mut store);
                    durable_seq = seq;
                    m.durable.append(&mut m.open);
                }
                Op::Trim(before) => {
                    let r = e.trim("s", before);
                    if before > m.head() + 1 || (m.head() == 0 && e.scopes().next().is_none()) {
                        prop_assert!(r.is_err());
                    } else {
                        prop_assert!(r.is_ok());
                        flush(&mut e, &mut store);
                        durable_seq = seq;
                        m.durable.append(&mut m.open);
                        m.first_kept = m.first_kept.max(before);
                    }
                }
                Op::Restart => {
                    e = Engine::recover(multi_app(), EngineConfig::default(), store.load().unwrap()).unwrap();
                    // Not persisted: gone, and cursors are reused densely.
                    next_cursor -= m.open.len() as u64;
                    m.open.clear();
                    seq = durable_seq;
                }
                Op::Pull(cursor, limit) => {
                    let r = e.handle_pull(&PullRequest { scope: "s".into(), cursor, limit, client_id: None });
                    let ok_expected = cursor + 1 >= m.first_kept && cursor <= m.head();
                    match r {
                        Err(resp) => {
                            prop_assert!(!ok_expected, "pull {cursor} refused, head {}, first {}", m.head(), m.first_kept);
                            prop_assert_eq!(resp.status, 410);
                            let v: Value = serde_json::from_slice(&resp.body).unwrap();
                            prop_assert_eq!(&v["code"], &json!("cursor_too_old"));
                        }
                        Ok(p) => {
                            prop_assert!(ok_expected, "pull {cursor} served, head {}, first {}", m.head(), m.first_kept);
                            let expect: Vec<(u64, u64)> = m.durable.iter().copied().filter(|c| c.0 > cursor).collect();
                            let got: Vec<u64> = p.changes.iter().map(|c| c.cursor).collect();
                            // A prefix of what follows the cursor, in order.
                            prop_assert_eq!(&got[..], &expect.iter().map(|c| c.0).take(got.len()).collect::<Vec<_>>()[..]);
                            let limit = if limit == 0 { 100 } else { limit } as usize;
                            if let Some(&(last, group_end)) = expect.get(got.len().wrapping_sub(1)) {
                                prop_assert_eq!(last, group_end, "page ends on a mutation boundary");
                            }
                            if got.len() > limit {
                                // Only when one mutation alone exceeds the limit.
                                prop_assert!(expect[0].1 == *got.last().unwrap());
                            }
                            prop_assert_eq!(p.has_more, got.len() < expect.len());
                            if p.has_more {
                                prop_assert!(!got.is_empty());
                                // Could not have taken the next group within the limit.
                                let next_end = expect[got.len()].1;
                                let with_next = expect.iter().filter(|c| c.0 <= next_end).count();
                                prop_assert!(with_next > limit);
                            }
                            prop_assert_eq!(p.next_cursor, got.last().copied().unwrap_or(cursor));
                        }
                    }
                }
            }
        }
    }
}
