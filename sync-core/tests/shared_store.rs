//! An engine sharing its store with other engines (several nodes on one
//! database): a sequence gap may only mean this engine has not seen another
//! node's writes, so with `verify_sequence_gaps` the gap answer waits for a
//! batch naming the scope in `verify`; if the store refuses it as stale, the
//! driver reloads the scope and the same push is applied.

use serde_json::{Value, json};
use sync_core::store::{ClientRecord, LogEntry, ScopeRecords};
use sync_core::{
    Change, Engine, EngineConfig, KvApp, Mutation, MutationResult, Output, RequestId, Timestamp,
};

const WALL: Timestamp = Timestamp(1_795_328_895_000);

fn put(seq: u64) -> Mutation {
    Mutation {
        id: format!("c:{seq}"),
        scope: "s".to_owned(),
        name: "put".to_owned(),
        args: Some(json!({"key": format!("k{seq}"), "value": seq})),
        client_id: Some("c".to_owned()),
        seq: Some(seq),
    }
}

fn engine(verify: bool) -> Engine<KvApp> {
    let config = EngineConfig {
        verify_sequence_gaps: verify,
        ..EngineConfig::default()
    };
    Engine::new(KvApp::new(), config)
}

/// Every output, with response bodies as JSON.
fn drain(e: &mut Engine<KvApp>) -> Vec<Value> {
    std::iter::from_fn(|| e.poll_output())
        .map(|o| match o {
            Output::Response {
                request_id,
                response,
            } => json!({
                "request": request_id.0,
                "status": response.status,
                "body": serde_json::from_slice::<Value>(&response.body).expect("json"),
            }),
            Output::Poke { scope, cursor } => json!({"poke": scope, "cursor": cursor}),
        })
        .collect()
}

/// What another node wrote: client `c`'s seq 1, at cursor 1.
fn written_elsewhere() -> ScopeRecords {
    let result: MutationResult =
        serde_json::from_value(json!({"ok": true, "cursor": 1})).expect("result");
    ScopeRecords {
        scope: "s".into(),
        base: None,
        changes: vec![LogEntry {
            change: Change {
                cursor: 1,
                scope: "s".into(),
                time: WALL,
                data: json!({"op": "put", "key": "k1", "value": 1}),
            },
            group_end: 1,
        }],
        clients: vec![ClientRecord {
            scope: "s".into(),
            client_id: "c".into(),
            seq: 1,
            result,
            keep_from: 1,
        }],
        ids: vec![],
    }
}

#[test]
fn the_only_writer_answers_a_gap_at_once() {
    let mut e = engine(false);
    e.handle_push(WALL, RequestId(1), vec![put(2)]);
    let out = drain(&mut e);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["body"]["results"][0]["code"], "conflict");
    assert!(e.poll_ready().is_none());
}

#[test]
fn a_shared_engine_holds_a_gap_until_a_batch_verifies_the_scope() {
    let mut e = engine(true);
    e.handle_push(WALL, RequestId(1), vec![put(2)]);
    assert_eq!(drain(&mut e), Vec::<Value>::new(), "not answered yet");
    let ready = e.poll_ready().expect("a batch to verify");
    assert_eq!(ready.persist.verify, vec!["s".to_owned()]);
    assert!(ready.persist.changes.is_empty() && ready.persist.clients.is_empty());
    // The scope cannot be reloaded under the answer being verified.
    assert!(e.reload_scope(&written_elsewhere()).is_err());
    // The store confirmed the view: the gap stands.
    e.advance(ready.number).expect("advance");
    let out = drain(&mut e);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        out[0]["body"]["results"][0]["error"],
        "sequence gap: expected seq 1, got 2"
    );
}

#[test]
fn a_gap_refused_as_stale_is_applied_after_reloading() {
    let mut e = engine(true);
    e.handle_push(WALL, RequestId(1), vec![put(2)]);
    let ready = e.poll_ready().expect("batch");
    // Another node had written seq 1: the store refuses the batch.
    e.handle_persist_failed(ready.number).expect("failed");
    let refused = drain(&mut e);
    assert_eq!(refused[0]["status"], 500);
    e.reload_scope(&written_elsewhere()).expect("reload");
    // The driver pushes again.
    e.handle_push(WALL, RequestId(1), vec![put(2)]);
    let ready = e.poll_ready().expect("batch");
    assert!(ready.persist.verify.is_empty());
    assert_eq!(ready.persist.changes[0].change.cursor, 2);
    e.advance(ready.number).expect("advance");
    let out = drain(&mut e);
    assert_eq!(out[0]["body"]["results"][0]["ok"], true, "{out:?}");
    assert_eq!(out[0]["body"]["results"][0]["cursor"], 2, "{out:?}");
}
