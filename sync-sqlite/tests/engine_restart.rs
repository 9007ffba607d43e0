//! An engine persisting into a SQLite file gives the same answers after a
//! restart: pulls, snapshots, replayed mutations and trims all survive.

use serde_json::{Value, json};
use sync_core::{
    Engine, EngineConfig, KvApp, Mutation, Output, PullRequest, RequestId, SnapshotRequest, Store,
    Timestamp,
};
use sync_sqlite::{Durability, SqliteStore};

const WALL: Timestamp = Timestamp(1_795_328_895_000);

fn put(client: &str, seq: u64, key: &str, value: Value) -> Mutation {
    Mutation {
        id: format!("{client}:{seq}"),
        scope: "todos".to_owned(),
        name: "put".to_owned(),
        args: Some(json!({"key": key, "value": value})),
        client_id: Some(client.to_owned()),
        seq: Some(seq),
    }
}

/// Persists every ready batch and returns the push answers, by request id.
fn commit(engine: &mut Engine<KvApp>, store: &mut SqliteStore) -> Vec<(u64, Value)> {
    while let Some(ready) = engine.poll_ready() {
        store.persist(&ready.persist).expect("persist");
        engine.advance(ready.number).expect("advance");
    }
    std::iter::from_fn(|| engine.poll_output())
        .filter_map(|o| match o {
            Output::Response {
                request_id,
                response,
            } => Some((
                request_id.0,
                serde_json::from_slice(&response.body).expect("json"),
            )),
            Output::Poke { .. } => None,
        })
        .collect()
}

fn pull(engine: &Engine<KvApp>, cursor: u64) -> Value {
    let req = PullRequest {
        scope: "todos".into(),
        cursor,
        limit: 0,
        client_id: None,
    };
    match engine.handle_pull(&req) {
        Ok(r) => serde_json::to_value(r).expect("json"),
        Err(e) => {
            json!({"status": e.status, "body": serde_json::from_slice::<Value>(&e.body).expect("json")})
        }
    }
}

fn snapshot(engine: &Engine<KvApp>) -> Value {
    let req = SnapshotRequest {
        scope: "todos".into(),
        client_id: Some("alice".into()),
    };
    serde_json::to_value(engine.handle_snapshot(&req)).expect("json")
}

#[test]
fn a_restarted_engine_answers_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sync.db");

    let mut store = SqliteStore::open(&path, Durability::Full).expect("open");
    let mut engine = Engine::new(KvApp::new(), EngineConfig::default());
    for seq in 1..=5 {
        engine.handle_push(
            WALL,
            RequestId(seq),
            vec![put(
                "alice",
                seq,
                &format!("t{seq}"),
                json!({"done": false}),
            )],
        );
    }
    let first = commit(&mut engine, &mut store);
    assert_eq!(first.len(), 5);
    engine.trim("todos", 3).expect("trim");
    engine.handle_push(
        WALL,
        RequestId(6),
        vec![put("bob", 1, "t1", json!({"done": true}))],
    );
    commit(&mut engine, &mut store);

    let answers = (pull(&engine, 2), pull(&engine, 0), snapshot(&engine));
    assert_eq!(
        answers.1["status"], 410,
        "cursor 0 after a trim is too old: {}",
        answers.1
    );
    drop(store);

    let mut store = SqliteStore::open(&path, Durability::Full).expect("reopen");
    let mut restarted = Engine::recover(
        KvApp::new(),
        EngineConfig::default(),
        store.load().expect("load"),
    )
    .expect("recover");
    assert_eq!(
        (
            pull(&restarted, 2),
            pull(&restarted, 0),
            snapshot(&restarted)
        ),
        answers
    );

    // A retry of an acknowledged mutation gets its original answer and is
    // not applied again.
    restarted.handle_push(
        WALL,
        RequestId(7),
        vec![put("alice", 3, "t3", json!("changed?"))],
    );
    let replay = commit(&mut restarted, &mut store);
    let original = first.iter().find(|(id, _)| *id == 3).expect("answer 3");
    assert_eq!(replay, vec![(7, original.1.clone())]);
    assert_eq!(snapshot(&restarted), answers.2);
}
