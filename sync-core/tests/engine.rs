//! Transcript tests of the server engine: durability gating, dedupe, errors,
//! persist failures, pagination, trims and recovery.

mod common;

use common::*;
use serde_json::json;
use sync_core::{
    Engine, EngineConfig, EngineError, KvApp, MemoryStore, PullRequest, RequestId, SnapshotRequest,
    Store, Timestamp,
};

fn pull(scope: &str, cursor: u64, limit: u64) -> PullRequest {
    PullRequest {
        scope: scope.into(),
        cursor,
        limit,
        client_id: None,
    }
}

fn snap(scope: &str) -> SnapshotRequest {
    SnapshotRequest {
        scope: scope.into(),
        client_id: None,
    }
}

#[test]
fn nothing_is_visible_or_answered_before_advance() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    e.handle_push(
        T0,
        RequestId(1),
        vec![seq("s", "c", 1, "put", json!({"key":"a","value":1}))],
    );
    assert!(drain(&mut e).is_empty(), "no answer before durability");
    assert_eq!(e.handle_pull(&pull("s", 0, 0)).unwrap().changes.len(), 0);
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({}));
    assert_eq!(e.handle_snapshot(&snap("s")).cursor, 0);

    let ready = e.poll_ready().expect("a batch");
    assert_eq!(ready.number, 1);
    assert_eq!(ready.persist.changes.len(), 1);
    assert_eq!(ready.persist.clients.len(), 1);
    assert!(e.poll_ready().is_none(), "one batch outstanding at a time");
    store.persist(&ready.persist).unwrap();
    // Still not visible: persisted but not acknowledged.
    assert_eq!(e.handle_pull(&pull("s", 0, 0)).unwrap().changes.len(), 0);
    e.advance(1).unwrap();

    let out = drain(&mut e);
    let (status, body) = push_answer(&out, 1).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["ok"], json!(true));
    assert_eq!(body["results"][0]["cursor"], json!(1));
    assert_eq!(pokes(&out), vec![("s".to_string(), 1)]);
    let p = e.handle_pull(&pull("s", 0, 0)).unwrap();
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.next_cursor, 1);
    assert!(!p.has_more);
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"a":1}));
}

#[test]
fn mutators_see_working_state_readers_see_committed() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    e.handle_push(
        T0,
        RequestId(1),
        vec![seq("s", "c", 1, "incr", json!({"key":"n"}))],
    );
    e.handle_push(
        T0,
        RequestId(2),
        vec![seq("s", "d", 1, "incr", json!({"key":"n"}))],
    );
    // Both in the open batch: the second mutator saw the first's effect.
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({}));
    let ready = e.poll_ready().unwrap();
    assert_eq!(ready.persist.changes.len(), 2, "group commit of two pushes");
    assert_eq!(ready.persist.changes[1].change.data["value"], json!(2));
    // A push arriving while batch 1 is being persisted goes to the next batch.
    e.handle_push(
        T0,
        RequestId(3),
        vec![seq("s", "c", 2, "incr", json!({"key":"n"}))],
    );
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({}));
    store.persist(&ready.persist).unwrap();
    e.advance(ready.number).unwrap();
    let out = drain(&mut e);
    assert!(push_answer(&out, 1).is_some() && push_answer(&out, 2).is_some());
    assert!(push_answer(&out, 3).is_none(), "push 3 is not durable yet");
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"n":2}));
    assert_eq!(e.handle_pull(&pull("s", 0, 0)).unwrap().next_cursor, 2);
    flush(&mut e, &mut store);
    let out = drain(&mut e);
    assert_eq!(
        push_answer(&out, 3).unwrap().1["results"][0]["cursor"],
        json!(3)
    );
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"n":3}));
}

#[test]
fn failed_persist_answers_500_rolls_back_and_retry_applies_once() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    e.handle_push(
        T0,
        RequestId(1),
        vec![seq("s", "c", 1, "incr", json!({"key":"n"}))],
    );
    flush(&mut e, &mut store);
    drain(&mut e);

    e.handle_push(
        T0,
        RequestId(2),
        vec![seq("s", "c", 2, "incr", json!({"key":"n"}))],
    );
    let ready = e.poll_ready().unwrap();
    // Arrives during the failing persist, applied on top of it.
    e.handle_push(
        T0,
        RequestId(3),
        vec![seq("s", "d", 1, "incr", json!({"key":"n"}))],
    );
    store.fail_next(1);
    assert!(store.persist(&ready.persist).is_err());
    assert_eq!(
        e.advance(ready.number + 1),
        Err(EngineError::NotOutstanding {
            given: ready.number + 1,
            outstanding: Some(ready.number)
        })
    );
    e.handle_persist_failed(ready.number).unwrap();
    let out = drain(&mut e);
    assert_eq!(push_answer(&out, 2).unwrap().0, 500);
    assert_eq!(push_answer(&out, 3).unwrap().0, 500);
    assert_eq!(
        push_answer(&out, 2).unwrap().1["code"],
        json!("internal_error")
    );
    assert!(pokes(&out).is_empty());
    assert!(e.poll_ready().is_none(), "the open batch failed with it");
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"n":1}));

    // Retries: applied exactly once, cursors continue densely.
    e.handle_push(
        T0,
        RequestId(4),
        vec![seq("s", "c", 2, "incr", json!({"key":"n"}))],
    );
    e.handle_push(
        T0,
        RequestId(5),
        vec![seq("s", "d", 1, "incr", json!({"key":"n"}))],
    );
    flush(&mut e, &mut store);
    let out = drain(&mut e);
    assert_eq!(
        push_answer(&out, 4).unwrap().1["results"][0]["cursor"],
        json!(2)
    );
    assert_eq!(
        push_answer(&out, 5).unwrap().1["results"][0]["cursor"],
        json!(3)
    );
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"n":3}));
    let recovered = Engine::recover(app(), EngineConfig::default(), store.load().unwrap()).unwrap();
    assert_eq!(recovered.handle_snapshot(&snap("s")).data, json!({"n":3}));
}

#[test]
fn replay_returns_original_result_and_gaps_are_refused() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    e.handle_push(
        T0,
        RequestId(1),
        vec![seq("s", "c", 1, "incr", json!({"key":"n"}))],
    );
    e.handle_push(
        T0,
        RequestId(2),
        vec![seq("s", "d", 1, "incr", json!({"key":"n"}))],
    );
    flush(&mut e, &mut store);
    let first = push_answer(&drain(&mut e), 1).unwrap().1;

    // The same mutation again (lost response): original result, not reapplied.
    e.handle_push(
        Timestamp(T0.0 + 5000),
        RequestId(3),
        vec![seq("s", "c", 1, "incr", json!({"key":"n"}))],
    );
    flush(&mut e, &mut store);
    let again = push_answer(&drain(&mut e), 3).unwrap().1;
    assert_eq!(first, again);
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"n":2}));

    // A gap: seq 3 before 2 is refused and not recorded; 2 then 3 work.
    e.handle_push(
        T0,
        RequestId(4),
        vec![seq("s", "c", 3, "incr", json!({"key":"n"}))],
    );
    flush(&mut e, &mut store);
    let gap = push_answer(&drain(&mut e), 4).unwrap().1;
    assert_eq!(gap["results"][0]["ok"], json!(false));
    assert_eq!(gap["results"][0]["code"], json!("conflict"));
    e.handle_push(
        T0,
        RequestId(5),
        vec![
            seq("s", "c", 2, "incr", json!({"key":"n"})),
            seq("s", "c", 3, "incr", json!({"key":"n"})),
        ],
    );
    flush(&mut e, &mut store);
    let ok = push_answer(&drain(&mut e), 5).unwrap().1;
    assert_eq!(ok["results"][1]["cursor"], json!(4));
}

#[test]
fn permanent_errors_are_recorded_transient_errors_stop_the_push() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    e.handle_push(
        T0,
        RequestId(1),
        vec![
            seq("s", "c", 1, "fail", json!({})),
            seq("s", "c", 2, "put", json!({"key":"a","value":true})),
            seq("s", "c", 3, "fail", json!({"transient": true})),
            seq("s", "c", 4, "put", json!({"key":"b","value":true})),
        ],
    );
    flush(&mut e, &mut store);
    let r = push_answer(&drain(&mut e), 1).unwrap().1["results"].clone();
    assert_eq!(r[0]["code"], json!("conflict"));
    assert_eq!(r[1]["ok"], json!(true));
    assert_eq!(r[2]["code"], json!("internal_error"));
    assert_eq!(r[3]["code"], json!("internal_error"));
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"a":true}));
    // The permanent error replays; seq 3 is still open.
    e.handle_push(
        T0,
        RequestId(2),
        vec![
            seq("s", "c", 1, "fail", json!({})),
            seq("s", "c", 3, "put", json!({"key":"c","value":3})),
        ],
    );
    flush(&mut e, &mut store);
    let r = push_answer(&drain(&mut e), 2).unwrap().1["results"].clone();
    assert_eq!(r[0]["code"], json!("conflict"));
    assert_eq!(r[1]["ok"], json!(true));
    let s = e.handle_snapshot(&SnapshotRequest {
        scope: "s".into(),
        client_id: Some("c".into()),
    });
    assert_eq!(s.client_seq, Some(3));
}

/// An engine keeping id records `retention_ms`, its store, and one push of
/// mutation `m1` (incrementing `n` in scope `s`) at `T0`, not yet flushed.
fn with_m1_pushed(retention_ms: u64) -> (EngineConfig, Engine<KvApp>, MemoryStore) {
    let cfg = EngineConfig {
        id_retention_ms: retention_ms,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(app(), cfg.clone());
    e.handle_push(
        T0,
        RequestId(1),
        vec![by_id("s", "m1", "incr", json!({"key":"n"}))],
    );
    (cfg, e, MemoryStore::new())
}

#[test]
fn mutation_id_dedupe_within_retention_window() {
    let (cfg, mut e, mut store) = with_m1_pushed(1000);
    e.handle_push(
        T0,
        RequestId(2),
        vec![by_id("s", "m1", "incr", json!({"key":"n"}))],
    );
    flush(&mut e, &mut store);
    let out = drain(&mut e);
    assert_eq!(push_answer(&out, 1), push_answer(&out, 2));
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"n":1}));
    // Survives a restart.
    let mut e = Engine::recover(app(), cfg, store.load().unwrap()).unwrap();
    e.handle_push(
        Timestamp(T0.0 + 999),
        RequestId(3),
        vec![by_id("s", "m1", "incr", json!({"key":"n"}))],
    );
    flush(&mut e, &mut store);
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"n":1}));
    // After the window the record is gone (documented limit of id dedupe).
    e.handle_push(
        Timestamp(T0.0 + 1000),
        RequestId(4),
        vec![by_id("s", "m2", "incr", json!({"key":"x"}))],
    );
    let ready = e.poll_ready().unwrap();
    assert_eq!(ready.persist.expired_ids.len(), 1);
}

/// A mutation retried after its id expired is applied again and recorded
/// again, and the new record is durable: its push also expires the old one
/// (both in one batch), and the store must keep the new one. After a
/// restart the retry is still deduplicated.
#[test]
fn an_id_retried_after_it_expired_is_recorded_again_durably() {
    let (cfg, mut e, mut store) = with_m1_pushed(1000);
    flush(&mut e, &mut store);
    let later = Timestamp(T0.0 + 5000);
    e.handle_push(
        later,
        RequestId(2),
        vec![by_id("s", "m1", "incr", json!({"key":"n"}))],
    );
    let batch = flush(&mut e, &mut store);
    assert_eq!(batch.len(), 1);
    assert_eq!(
        batch[0].persist.expired_ids.len(),
        1,
        "the old record expires"
    );
    assert_eq!(batch[0].persist.ids.len(), 1, "the retry is recorded");
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"n":2}));

    let mut e = Engine::recover(app(), cfg, store.load().unwrap()).unwrap();
    e.handle_push(
        Timestamp(later.0 + 10),
        RequestId(3),
        vec![by_id("s", "m1", "incr", json!({"key":"n"}))],
    );
    flush(&mut e, &mut store);
    assert_eq!(
        e.handle_snapshot(&snap("s")).data,
        json!({"n":2}),
        "the retry's record was lost: applied a third time"
    );
}

/// An id recorded and expired within one batch (a retention shorter than
/// the batch) leaves nothing behind: the batch does not name it at all.
#[test]
fn an_id_recorded_and_expired_in_one_batch_is_left_out_of_it() {
    let (_, mut e, mut store) = with_m1_pushed(10);
    e.handle_push(
        Timestamp(T0.0 + 50),
        RequestId(2),
        vec![by_id("s", "m2", "incr", json!({"key":"n"}))],
    );
    let batch = flush(&mut e, &mut store);
    assert_eq!(batch.len(), 1);
    let ids: Vec<&str> = batch[0].persist.ids.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["m2"]);
    assert!(batch[0].persist.expired_ids.is_empty());
    assert_eq!(store.load().unwrap().scopes[0].ids.len(), 1);
}

#[test]
fn pages_never_split_a_mutation_and_next_cursor_is_always_present() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    for i in 1..=3 {
        e.handle_push(
            T0,
            RequestId(i),
            vec![seq("s", "c", i, "pair", json!({"key": format!("k{i}")}))],
        );
    }
    flush(&mut e, &mut store);
    // limit 3: two whole pairs don't fit, so one pair (2 changes).
    let p = e.handle_pull(&pull("s", 0, 3)).unwrap();
    assert_eq!(p.changes.len(), 2);
    assert!(p.has_more);
    assert_eq!(p.next_cursor, 2);
    // limit 1 smaller than one mutation: the whole mutation anyway.
    let p = e.handle_pull(&pull("s", 2, 1)).unwrap();
    assert_eq!(
        p.changes.iter().map(|c| c.cursor).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let p = e.handle_pull(&pull("s", 4, 100)).unwrap();
    assert_eq!(p.next_cursor, 6);
    assert!(!p.has_more);
    let p = e.handle_pull(&pull("s", 6, 100)).unwrap();
    assert!(p.changes.is_empty());
    assert_eq!(p.next_cursor, 6);
    let body = serde_json::to_value(&p).unwrap();
    assert_eq!(
        body,
        json!({"changes": [], "has_more": false, "next_cursor": 6})
    );
    // Ahead of the head: 410, up to the largest cursor.
    assert_eq!(e.handle_pull(&pull("s", 7, 100)).unwrap_err().status, 410);
    assert_eq!(
        e.handle_pull(&pull("s", u64::MAX, u64::MAX))
            .unwrap_err()
            .status,
        410
    );
    assert_eq!(
        e.handle_pull(&pull("s", 0, u64::MAX))
            .unwrap()
            .changes
            .len(),
        6
    );
    // Unknown scope: empty at 0.
    assert_eq!(e.handle_pull(&pull("other", 0, 0)).unwrap().next_cursor, 0);
}

#[test]
fn trim_semantics_and_recovery_from_a_trimmed_log() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    for i in 1..=5 {
        e.handle_push(
            T0,
            RequestId(i),
            vec![seq("s", "c", i, "incr", json!({"key":"n"}))],
        );
    }
    flush(&mut e, &mut store);
    assert!(matches!(
        e.trim("s", 7),
        Err(EngineError::TrimBeyondHead { .. })
    ));
    e.trim("s", 4).unwrap();
    // Not durable yet: old cursors still served.
    assert!(e.handle_pull(&pull("s", 0, 0)).is_ok());
    flush(&mut e, &mut store);
    for c in 0..=6 {
        let r = e.handle_pull(&pull("s", c, 0));
        match c {
            0..=2 => assert_eq!(r.unwrap_err().status, 410, "cursor {c}"),
            3..=5 => assert!(r.is_ok(), "cursor {c}"),
            _ => assert_eq!(r.unwrap_err().status, 410, "cursor {c} is ahead"),
        }
    }
    let err = e.handle_pull(&pull("s", 0, 0)).unwrap_err();
    let body: serde_json::Value = serde_json::from_slice(&err.body).unwrap();
    assert_eq!(body["code"], json!("cursor_too_old"));
    assert_eq!(
        e.handle_pull(&pull("s", 3, 0)).unwrap().changes[0].cursor,
        4
    );

    let before_restart = (
        e.handle_snapshot(&snap("s")),
        e.handle_pull(&pull("s", 3, 0)).unwrap(),
    );
    let r = Engine::recover(app(), EngineConfig::default(), store.load().unwrap()).unwrap();
    assert_eq!(before_restart.0, r.handle_snapshot(&snap("s")));
    assert_eq!(before_restart.1, r.handle_pull(&pull("s", 3, 0)).unwrap());
    assert_eq!(r.handle_pull(&pull("s", 2, 0)).unwrap_err().status, 410);
    assert_eq!(before_restart.0.data, json!({"n":5}));
}

#[test]
fn restart_gives_the_same_answers() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    for i in 1..=20u64 {
        let client = ["a", "b"][(i % 2) as usize];
        let m = seq(
            "s",
            client,
            i.div_ceil(2),
            "put",
            json!({"key": format!("k{}", i % 7), "value": i}),
        );
        e.handle_push(Timestamp(T0.0 + i), RequestId(i), vec![m]);
        if i % 3 == 0 {
            flush(&mut e, &mut store);
        }
    }
    flush(&mut e, &mut store);
    // Not persisted: lost at restart, never visible before it either.
    e.handle_push(
        T0,
        RequestId(99),
        vec![seq("s", "a", 11, "put", json!({"key":"z","value":0}))],
    );
    let answers = |e: &Engine<sync_core::KvApp>| {
        (
            e.handle_snapshot(&SnapshotRequest {
                scope: "s".into(),
                client_id: Some("a".into()),
            }),
            e.handle_pull(&PullRequest {
                scope: "s".into(),
                cursor: 3,
                limit: 5,
                client_id: Some("b".into()),
            })
            .unwrap(),
            e.handle_pull(&pull("s", 0, 1000)).unwrap(),
        )
    };
    let before = answers(&e);
    let mut r = Engine::recover(app(), EngineConfig::default(), store.load().unwrap()).unwrap();
    assert_eq!(before, answers(&r));
    // Replays after restart give the original results.
    e.handle_push(
        T0,
        RequestId(100),
        vec![seq("s", "b", 3, "put", json!({"key":"q","value":0}))],
    );
    r.handle_push(
        T0,
        RequestId(100),
        vec![seq("s", "b", 3, "put", json!({"key":"q","value":0}))],
    );
    let mut s2 = store.clone();
    flush(&mut e, &mut store);
    flush(&mut r, &mut s2);
    let a = drain(&mut e);
    let b = drain(&mut r);
    assert_eq!(push_answer(&a, 100), push_answer(&b, 100));
}

#[test]
fn json_of_changes_matches_go() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    e.handle_push(
        Timestamp(1_795_328_895_120),
        RequestId(1),
        vec![by_id("", "m", "put", json!({"key":"a","value":[1]}))],
    );
    flush(&mut e, &mut store);
    let p = e.handle_pull(&pull("", 0, 0)).unwrap();
    assert_eq!(
        serde_json::to_string(&p.changes[0]).unwrap(),
        r#"{"cursor":1,"scope":"_default","time":"2026-11-22T06:28:15.12Z","data":{"key":"a","op":"put","value":[1]}}"#
    );
}

#[test]
fn a_later_smaller_trim_never_moves_the_base_back() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    for i in 1..=8 {
        e.handle_push(
            T0,
            RequestId(i),
            vec![seq("s", "c", i, "incr", json!({"key":"n"}))],
        );
    }
    flush(&mut e, &mut store);
    e.trim("s", 7).unwrap();
    let ready = e.poll_ready().unwrap();
    e.trim("s", 4).unwrap(); // pending trim 7 already covers it
    store.persist(&ready.persist).unwrap();
    e.advance(ready.number).unwrap();
    assert!(e.poll_ready().is_none(), "the smaller trim was dropped");
    // A store must also ignore a stale trim on its own.
    let mut stale = sync_core::Batch::default();
    stale.trims.push(sync_core::store::Trim {
        scope: "s".into(),
        before: 3,
        base: json!({"n": 2}),
    });
    store.persist(&stale).unwrap();
    let r = Engine::recover(app(), EngineConfig::default(), store.load().unwrap()).unwrap();
    assert_eq!(r.handle_snapshot(&snap("s")).data, json!({"n": 8}));
    assert_eq!(r.handle_pull(&pull("s", 5, 0)).unwrap_err().status, 410);
    assert_eq!(r.handle_pull(&pull("s", 6, 0)).unwrap().changes.len(), 2);
}

#[test]
fn a_scope_can_be_reloaded_from_the_store_when_idle() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    e.handle_push(
        T0,
        RequestId(1),
        vec![seq("s", "c", 1, "incr", json!({"key":"n"}))],
    );
    flush(&mut e, &mut store);
    // Another process writes to the same database.
    let mut other = Engine::recover(app(), EngineConfig::default(), store.load().unwrap()).unwrap();
    other.handle_push(
        T0,
        RequestId(1),
        vec![seq("s", "d", 1, "incr", json!({"key":"n"}))],
    );
    flush(&mut other, &mut store);
    e.handle_push(
        T0,
        RequestId(2),
        vec![seq("t", "c", 1, "incr", json!({"key":"n"}))],
    );
    let records = store.load_scope("s").unwrap().unwrap();
    e.reload_scope(&records).unwrap();
    assert_eq!(e.handle_snapshot(&snap("s")).data, json!({"n":2}));
    // Scope t has work in flight: refused.
    let t = sync_core::store::ScopeRecords {
        scope: "t".into(),
        ..Default::default()
    };
    assert_eq!(
        e.reload_scope(&t),
        Err(EngineError::ScopeBusy { scope: "t".into() })
    );
}

#[test]
fn encoded_pull_is_byte_identical_to_the_typed_one() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    for i in 1..=5 {
        e.handle_push(
            T0,
            RequestId(i),
            vec![seq("s", "c", i, "pair", json!({"key": format!("k{i}")}))],
        );
    }
    flush(&mut e, &mut store);
    for (cursor, limit, client) in [
        (0, 3, None),
        (2, 100, Some("c")),
        (10, 1, Some("x")),
        (11, 1, None),
    ] {
        let req = PullRequest {
            scope: "s".into(),
            cursor,
            limit,
            client_id: client.map(String::from),
        };
        let typed = match e.handle_pull(&req) {
            Ok(r) => sync_core::Response::ok(&r),
            Err(r) => r,
        };
        assert_eq!(typed, e.handle_pull_encoded(&req), "cursor {cursor}");
    }
}

#[test]
fn encoded_snapshot_is_byte_identical_to_the_typed_one() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    for i in 1..=5 {
        e.handle_push(
            T0,
            RequestId(i),
            vec![seq(
                "s",
                "c",
                i,
                "put",
                json!({"key": format!("k\"{i}"), "value": {"v": [i, "é"]}}),
            )],
        );
    }
    flush(&mut e, &mut store);
    for (scope, client) in [
        ("s", None),
        ("s", Some("c")),
        ("none", Some("c")),
        ("none", None),
    ] {
        let req = SnapshotRequest {
            scope: scope.into(),
            client_id: client.map(String::from),
        };
        let typed = sync_core::Response::ok(&e.handle_snapshot(&req));
        assert_eq!(typed, e.handle_snapshot_encoded(&req), "{scope} {client:?}");
    }
}

#[test]
fn retention_keeps_the_log_bounded_and_old_cursors_get_410() {
    let cfg = EngineConfig {
        keep_changes: Some(8),
        ..EngineConfig::default()
    };
    let mut e = Engine::new(app(), cfg.clone());
    let mut store = MemoryStore::new();
    for i in 1..=100u64 {
        e.handle_push(
            T0,
            RequestId(i),
            vec![seq(
                "s",
                "c",
                i,
                "put",
                json!({"key": format!("k{i}"), "value": i}),
            )],
        );
        flush(&mut e, &mut store);
        // Fewer than twice keep (16) changes once durable, and never fewer
        // than keep once that many exist.
        let first_ok = (0..=i).find(|&c| e.handle_pull(&pull("s", c, 0)).is_ok());
        let first_ok = first_ok.expect("the head itself is always pullable");
        let kept = i - first_ok;
        assert!(kept < 16, "after {i} pushes {kept} changes kept");
        assert!(
            kept >= i.min(8),
            "after {i} pushes only {kept} changes kept"
        );
    }
    assert_eq!(e.handle_pull(&pull("s", 0, 0)).unwrap_err().status, 410);
    let snapshot = e.handle_snapshot(&snap("s"));
    assert_eq!(snapshot.cursor, 100);
    assert_eq!(snapshot.data["k1"], json!(1), "a trim keeps the state");
    assert_eq!(snapshot.data["k100"], json!(100));
    // What the store holds recovers to the same answers, and the store
    // holds only the kept changes.
    let recovered = store.load().unwrap();
    assert!(recovered.scopes[0].changes.len() < 16);
    let r = Engine::recover(app(), cfg, recovered).unwrap();
    assert_eq!(r.handle_snapshot(&snap("s")), snapshot);
}

#[test]
fn without_retention_nothing_is_trimmed() {
    let mut e = engine();
    let mut store = MemoryStore::new();
    for i in 1..=50u64 {
        e.handle_push(
            T0,
            RequestId(i),
            vec![seq("s", "c", i, "incr", json!({"key":"n"}))],
        );
        flush(&mut e, &mut store);
    }
    assert_eq!(e.handle_pull(&pull("s", 0, 0)).unwrap().changes.len(), 50);
}
