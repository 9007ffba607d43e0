//! A delta applied to a scope must leave exactly what a rebuild from the
//! same records leaves: the model is two engines on one store, a writer and
//! a reader that follows it by deltas (computed from the records, as a
//! shared store would hand them out), checked against a fresh rebuild after
//! every refresh. Then each case where a delta must not apply.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Engine, EngineConfig, EngineError, Output, RequestId};
use crate::app::{App, KvApp};
use crate::protocol::{Change, Mutation, Timestamp};
use crate::store::{
    DeltaMismatch, LogEntry, MemoryStore, ScopeDelta, ScopeMark, ScopeRecords, ScopeUpdate, Store,
    TrimBase, refresh_scope, refresh_scopes,
};

const SCOPES: [&str; 2] = ["a", "b"];

fn app() -> KvApp {
    KvApp::new().with("pair", |_, m| {
        let n = m.args.as_ref().and_then(|a| a.get("n")).cloned();
        Ok(vec![
            KvApp::put_change("left", n.clone().unwrap_or(Value::Null)),
            KvApp::put_change("right", n.unwrap_or(Value::Null)),
        ])
    })
}

fn config() -> EngineConfig {
    EngineConfig {
        client_results_kept: 2,
        id_retention_ms: 40,
        ..EngineConfig::default()
    }
}

/// Everything a scope answers from, as JSON, both views.
fn fingerprint(e: &Engine<KvApp>, scope: &str) -> Value {
    let Some(s) = e.scopes.get(scope) else {
        return Value::Null;
    };
    let view = |v: &super::scope::View<crate::app::KvState>| {
        let clients: BTreeMap<&str, Value> = v
            .clients
            .iter()
            .map(|(id, c)| {
                let results: BTreeMap<String, Value> = c
                    .results
                    .iter()
                    .map(|(seq, r)| (seq.to_string(), serde_json::to_value(&**r).unwrap()))
                    .collect();
                (id.as_str(), json!({"last": c.last, "results": results}))
            })
            .collect();
        json!({
            "state": e.app.snapshot(&v.state),
            "head": v.head,
            "clients": clients,
            "ids": serde_json::to_value(
                v.ids.iter().map(|(id, r)| (id, &**r)).collect::<BTreeMap<_, _>>()
            )
            .unwrap(),
            "ids_by_time": v.ids_by_time.iter().map(|(t, id)| json!([t.as_millis(), id])).collect::<Vec<_>>(),
        })
    };
    let log: Vec<&LogEntry> = s.log.committed_before(u64::MAX).collect();
    json!({
        "first_kept": s.log.first_kept(),
        "committed_head": s.log.committed_head(),
        "working_head": s.log.working_head(),
        "log": serde_json::to_value(&log).unwrap(),
        "base": s.base,
        "committed": view(&s.committed),
        "working": view(&s.working),
    })
}

/// What a shared store hands out after `old`: new changes, records that are
/// new or differ, every id record when one of the old ones is gone.
fn model_delta(old: &ScopeRecords, new: &ScopeRecords) -> ScopeDelta {
    let after = old.mark();
    let ids_complete = old
        .ids
        .iter()
        .any(|r| !new.ids.iter().any(|n| n.id == r.id));
    ScopeDelta {
        scope: new.scope.clone(),
        after,
        base: new.base.clone().filter(|_| new.base != old.base),
        changes: new
            .changes
            .iter()
            .filter(|e| e.change.cursor > after.head)
            .cloned()
            .collect(),
        clients: new
            .clients
            .iter()
            .filter(|c| !old.clients.contains(c))
            .cloned()
            .collect(),
        ids: new
            .ids
            .iter()
            .filter(|r| ids_complete || !old.ids.contains(r))
            .cloned()
            .collect(),
        ids_complete,
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Mutations of one push: (scope, client or none, seq offset, mutator, key).
    Push(Vec<(usize, Option<usize>, i8, u8, u8)>, u64),
    Trim(usize, u64),
    Refresh,
}

fn op() -> impl Strategy<Value = Op> {
    let mutation = (
        0..2usize,
        prop::option::of(0..3usize),
        -2..3i8,
        0..4u8,
        0..4u8,
    );
    prop_oneof![
        4 => (prop::collection::vec(mutation, 1..4), 0..25u64).prop_map(|(m, w)| Op::Push(m, w)),
        1 => (0..2usize, 0..3u64).prop_map(|(s, b)| Op::Trim(s, b)),
        2 => Just(Op::Refresh),
    ]
}

/// The writer: an engine whose every batch is persisted at once.
struct Writer {
    engine: Engine<KvApp>,
    store: MemoryStore,
    seqs: BTreeMap<(usize, usize), u64>,
    wall: u64,
    next: u64,
}

impl Writer {
    fn mutation(
        &mut self,
        (scope, client, offset, name, key): (usize, Option<usize>, i8, u8, u8),
    ) -> Mutation {
        let name = ["put", "pair", "delete", "nope"][name as usize].to_owned();
        let (id, client_id, seq) = match client {
            Some(c) => {
                let last = self.seqs.entry((scope, c)).or_default();
                let seq = (*last as i64 + 1 + i64::from(offset)).max(1) as u64;
                if seq == *last + 1 {
                    *last = seq;
                }
                (format!("m{seq}"), Some(format!("c{c}")), Some(seq))
            }
            None => (format!("id{key}"), None, None),
        };
        Mutation {
            id,
            scope: SCOPES[scope].to_owned(),
            name,
            args: Some(json!({"key": format!("k{key}"), "value": key, "n": self.next})),
            client_id,
            seq,
        }
    }

    fn settle(&mut self) {
        while let Some(ready) = self.engine.poll_ready() {
            self.store.persist(&ready.persist).expect("memory store");
            self.engine.advance(ready.number).expect("advance");
        }
        while self.engine.poll_output().is_some() {}
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Push(ms, step) => {
                self.wall += step;
                let ms: Vec<Mutation> = ms.iter().map(|m| self.mutation(*m)).collect();
                self.next += 1;
                let wall = Timestamp::from_millis(self.wall);
                self.engine.handle_push(wall, RequestId(self.next), ms);
            }
            Op::Trim(scope, back) => {
                let head = self.engine.durable_head(SCOPES[*scope]);
                let before = (head + 1).saturating_sub(*back).max(1);
                let _ = self.engine.trim(SCOPES[*scope], before);
            }
            Op::Refresh => {}
        }
        // The seq bookkeeping assumes every applied sequence sticks, which
        // holds: this store never fails.
        self.settle();
    }
}

/// The reader follows the store by deltas where they apply, and must equal
/// a rebuild from the same records.
fn refresh(
    reader: &mut Engine<KvApp>,
    held: &mut BTreeMap<String, ScopeRecords>,
    store: &mut MemoryStore,
) {
    for scope in SCOPES {
        let new = store
            .load_scope(scope)
            .unwrap()
            .unwrap_or_else(|| ScopeRecords::empty(scope));
        let old = held
            .remove(scope)
            .unwrap_or_else(|| ScopeRecords::empty(scope));
        assert_eq!(reader.scope_mark(scope).unwrap_or_default(), old.mark());
        let delta = model_delta(&old, &new);
        match delta.follows(old.mark()) {
            Ok(()) => {
                let mut merged = old.clone();
                merged.apply_delta(&delta).expect("records take the delta");
                assert_eq!(merged, new, "merged records");
                reader.apply_scope_delta(&delta).expect("delta applies");
            }
            Err(reason) => {
                assert_eq!(
                    reader.apply_scope_delta(&delta),
                    Err(EngineError::DeltaMismatch {
                        scope: scope.to_owned(),
                        reason
                    })
                );
                reader.reload_scope(&new).expect("rebuild");
            }
        }
        let mut rebuilt = Engine::new(app(), config());
        rebuilt.reload_scope(&new).expect("rebuild");
        assert_eq!(
            fingerprint(reader, scope),
            fingerprint(&rebuilt, scope),
            "scope {scope}"
        );
        held.insert(scope.to_owned(), new);
    }
}

/// The answers of both engines to the same pushes, and the batches they
/// would write.
fn answers(e: &mut Engine<KvApp>, pushes: &[Vec<Mutation>], wall: u64) -> Value {
    let mut out = Vec::new();
    for (i, p) in pushes.iter().enumerate() {
        e.handle_push(Timestamp::from_millis(wall), RequestId(i as u64), p.clone());
    }
    if let Some(ready) = e.poll_ready() {
        out.push(serde_json::to_value(&*ready.persist).unwrap());
        e.advance(ready.number).unwrap();
    }
    while let Some(o) = e.poll_output() {
        if let Output::Response { response, .. } = o {
            out.push(serde_json::from_slice(&response.body).unwrap());
        }
    }
    Value::Array(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_delta_leaves_what_a_rebuild_leaves(ops in prop::collection::vec(op(), 1..40)) {
        let mut w = Writer {
            engine: Engine::new(app(), config()),
            store: MemoryStore::new(),
            seqs: BTreeMap::new(),
            wall: 1_000,
            next: 0,
        };
        let mut reader = Engine::new(app(), config());
        let mut held = BTreeMap::new();
        for op in &ops {
            w.run(op);
            if matches!(op, Op::Refresh) {
                refresh(&mut reader, &mut held, &mut w.store);
            }
        }
        refresh(&mut reader, &mut held, &mut w.store);

        // Replays (and one new mutation per client) answer the same.
        let mut pushes = Vec::new();
        for (&(scope, client), &last) in &w.seqs {
            for seq in 1..=last + 1 {
                pushes.push(vec![Mutation {
                    id: format!("m{seq}"),
                    scope: SCOPES[scope].to_owned(),
                    name: "put".into(),
                    args: Some(json!({"key": "r", "value": seq})),
                    client_id: Some(format!("c{client}")),
                    seq: Some(seq),
                }]);
            }
        }
        for key in 0..4 {
            pushes.push(vec![Mutation {
                id: format!("id{key}"),
                scope: "a".into(),
                name: "put".into(),
                args: Some(json!({"key": "r", "value": key})),
                client_id: None,
                seq: None,
            }]);
        }
        let mut rebuilt = Engine::new(app(), config());
        for scope in SCOPES {
            rebuilt.reload_scope(&held[scope]).unwrap();
        }
        let wall = w.wall + 10;
        prop_assert_eq!(answers(&mut reader, &pushes, wall), answers(&mut rebuilt, &pushes, wall));
    }
}

// ---- each case where a delta must not apply ----

fn entry(cursor: u64) -> LogEntry {
    LogEntry {
        change: Change {
            cursor,
            scope: "a".into(),
            time: Timestamp::from_millis(1),
            data: KvApp::put_change("k", json!(cursor)),
        },
        group_end: cursor,
    }
}

fn put(seq: u64) -> Mutation {
    Mutation {
        id: format!("m{seq}"),
        scope: "a".into(),
        name: "put".into(),
        args: Some(json!({"key": "k", "value": seq})),
        client_id: Some("c".into()),
        seq: Some(seq),
    }
}

/// An engine holding cursors 1 and 2 of scope `a`, durable.
fn holding_two() -> Engine<KvApp> {
    let mut e = Engine::new(app(), config());
    let records = ScopeRecords {
        changes: vec![entry(1), entry(2)],
        ..ScopeRecords::empty("a")
    };
    e.reload_scope(&records).unwrap();
    e
}

fn delta_after(e: &Engine<KvApp>, changes: Vec<LogEntry>) -> ScopeDelta {
    ScopeDelta {
        changes,
        ..ScopeDelta::empty("a", e.scope_mark("a").unwrap())
    }
}

fn refused(e: &mut Engine<KvApp>, delta: &ScopeDelta) -> DeltaMismatch {
    let before = fingerprint(e, "a");
    let err = e.apply_scope_delta(delta).expect_err("refused");
    assert_eq!(fingerprint(e, "a"), before, "nothing changed");
    match err {
        EngineError::DeltaMismatch { reason, .. } => reason,
        other => panic!("not a mismatch: {other:?}"),
    }
}

#[test]
fn a_delta_that_follows_applies() {
    let mut e = holding_two();
    e.apply_scope_delta(&delta_after(&e, vec![entry(3)]))
        .unwrap();
    assert_eq!(
        e.scope_mark("a"),
        Some(ScopeMark {
            head: 3,
            first_kept: 1
        })
    );
}

#[test]
fn a_trim_by_another_writer_is_refused() {
    let mut e = holding_two();
    let delta = ScopeDelta {
        base: Some(TrimBase {
            before: 3,
            base: json!({}),
        }),
        ..delta_after(&e, vec![entry(3)])
    };
    assert_eq!(
        refused(&mut e, &delta),
        DeltaMismatch::Trimmed {
            before: 3,
            first_kept: 1
        }
    );
}

#[test]
fn a_gap_after_the_held_head_is_refused() {
    let mut e = holding_two();
    assert_eq!(
        refused(&mut e, &delta_after(&holding_two(), vec![entry(4)])),
        DeltaMismatch::Gap {
            cursor: 4,
            previous: 2
        }
    );
    assert_eq!(
        refused(
            &mut e,
            &delta_after(&holding_two(), vec![entry(3), entry(5)])
        ),
        DeltaMismatch::Gap {
            cursor: 5,
            previous: 3
        }
    );
}

#[test]
fn a_delta_read_after_another_mark_is_refused() {
    let mut e = holding_two();
    let delta = ScopeDelta::empty(
        "a",
        ScopeMark {
            head: 1,
            first_kept: 1,
        },
    );
    assert!(matches!(
        refused(&mut e, &delta),
        DeltaMismatch::OtherMark { head: 2, .. }
    ));
}

#[test]
fn a_record_of_another_scope_is_refused() {
    let mut e = holding_two();
    let mut other = entry(3);
    other.change.scope = "b".into();
    assert!(matches!(
        refused(&mut e, &delta_after(&holding_two(), vec![other])),
        DeltaMismatch::OtherScope { .. }
    ));
}

#[test]
fn a_scope_with_work_in_flight_is_not_touched() {
    let mut e = holding_two();
    let delta = delta_after(&e, vec![entry(3)]);
    e.handle_push(Timestamp::from_millis(5), RequestId(1), vec![put(1)]);
    assert_eq!(
        e.apply_scope_delta(&delta),
        Err(EngineError::ScopeBusy { scope: "a".into() })
    );
    let ready = e.poll_ready().unwrap();
    assert_eq!(
        e.apply_scope_delta(&delta),
        Err(EngineError::ScopeBusy { scope: "a".into() }),
        "nor while its batch is outstanding"
    );
    e.advance(ready.number).unwrap();
    assert_eq!(e.scope_mark("a").unwrap().head, 3, "its own cursor 3");
    assert!(matches!(
        e.apply_scope_delta(&delta),
        Err(EngineError::DeltaMismatch { .. })
    ));
}

#[test]
fn an_unknown_scope_takes_a_delta_from_nothing() {
    let mut e = Engine::new(app(), config());
    let delta = ScopeDelta {
        changes: vec![entry(1)],
        ..ScopeDelta::empty("a", ScopeMark::default())
    };
    e.apply_scope_delta(&delta).unwrap();
    assert_eq!(e.durable_head("a"), 1);
}

/// A store answering with a canned delta.
struct Canned(MemoryStore, ScopeDelta);

impl Store for Canned {
    type Error = crate::store::InjectedFailure;
    fn persist(&mut self, batch: &crate::Batch) -> Result<(), Self::Error> {
        self.0.persist(batch)
    }
    fn load(&mut self) -> Result<crate::Recovered, Self::Error> {
        self.0.load()
    }
    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, Self::Error> {
        self.0.load_scope(scope)
    }
    fn load_scope_since(&mut self, _: &str, _: ScopeMark) -> Result<ScopeUpdate, Self::Error> {
        Ok(ScopeUpdate::Delta(self.1.clone()))
    }
}

#[test]
fn refresh_falls_back_to_a_full_load_when_the_delta_does_not_follow() {
    let mut memory = MemoryStore::new();
    memory
        .persist(&crate::Batch {
            changes: vec![entry(1), entry(2), entry(3)],
            ..crate::Batch::default()
        })
        .unwrap();
    let held = ScopeMark {
        head: 2,
        first_kept: 1,
    };
    let good = ScopeDelta {
        changes: vec![entry(3)],
        ..ScopeDelta::empty("a", held)
    };
    let mut store = Canned(memory.clone(), good.clone());
    assert_eq!(
        refresh_scope(&mut store, "a", Some(held)).unwrap(),
        ScopeUpdate::Delta(good)
    );
    let gap = ScopeDelta {
        changes: vec![entry(4)],
        ..ScopeDelta::empty("a", held)
    };
    let mut store = Canned(memory.clone(), gap);
    let full = ScopeUpdate::Full(memory.load_scope("a").unwrap().unwrap());
    assert_eq!(refresh_scope(&mut store, "a", Some(held)).unwrap(), full);
    assert_eq!(
        refresh_scope(&mut store, "a", None).unwrap(),
        full,
        "unknown scope"
    );
    // A store without deltas (the default) loads whole; a scope it lacks is empty.
    assert_eq!(refresh_scope(&mut memory, "a", Some(held)).unwrap(), full);
    assert_eq!(
        refresh_scope(&mut memory, "z", Some(ScopeMark::default())).unwrap(),
        ScopeUpdate::Full(ScopeRecords::empty("z"))
    );
}

#[test]
fn refreshing_scopes_together_answers_as_refreshing_each() {
    let mut memory = MemoryStore::new();
    memory
        .persist(&crate::Batch {
            changes: vec![entry(1), entry(2), entry(3)],
            ..crate::Batch::default()
        })
        .unwrap();
    let held = ScopeMark {
        head: 2,
        first_kept: 1,
    };
    let good = ScopeDelta {
        changes: vec![entry(3)],
        ..ScopeDelta::empty("a", held)
    };
    let mut store = Canned(memory.clone(), good);
    let scopes = [
        ("a".to_owned(), Some(held)),
        ("z".to_owned(), None),
        ("a".to_owned(), None),
    ];
    let each: Vec<ScopeUpdate> = scopes
        .iter()
        .map(|(scope, held)| refresh_scope(&mut store, scope, *held).unwrap())
        .collect();
    assert_eq!(refresh_scopes(&mut store, &scopes).unwrap(), each);
    // A delta that does not follow falls back to a full load, as alone.
    let gap = ScopeDelta {
        changes: vec![entry(4)],
        ..ScopeDelta::empty("a", held)
    };
    let mut store = Canned(memory.clone(), gap);
    let full = ScopeUpdate::Full(memory.load_scope("a").unwrap().unwrap());
    assert_eq!(
        refresh_scopes(&mut store, &[("a".to_owned(), Some(held))]).unwrap(),
        [full]
    );
}
