//! Helpers shared by the integration tests: a driver loop over an engine and
//! a store, and `drain()` so tests read as transcripts.
#![allow(dead_code, unreachable_pub)]

use serde_json::Value;
use sync_core::{
    App, Engine, EngineConfig, KvApp, Mutation, Output, Ready, RequestId, Store, Timestamp,
};

/// The test application (see `sync_core::testing::app`).
pub fn app() -> KvApp {
    sync_core::testing::app()
}

pub fn engine() -> Engine<KvApp> {
    Engine::new(app(), EngineConfig::default())
}

pub const T0: Timestamp = Timestamp(1_795_328_895_000);

pub fn seq(scope: &str, client: &str, seq: u64, name: &str, args: Value) -> Mutation {
    Mutation {
        id: format!("{client}:{seq}"),
        scope: scope.to_owned(),
        name: name.to_owned(),
        args: Some(args),
        client_id: Some(client.to_owned()),
        seq: Some(seq),
    }
}

pub fn by_id(scope: &str, id: &str, name: &str, args: Value) -> Mutation {
    Mutation {
        id: id.to_owned(),
        scope: scope.to_owned(),
        name: name.to_owned(),
        args: Some(args),
        client_id: None,
        seq: None,
    }
}

/// Every output the engine has queued, in order.
pub fn drain<A: App>(engine: &mut Engine<A>) -> Vec<Output> {
    std::iter::from_fn(|| engine.poll_output()).collect()
}

/// Persists and advances every ready batch into `store`; returns the readies.
pub fn flush<A: App, S: Store>(engine: &mut Engine<A>, store: &mut S) -> Vec<Ready> {
    let mut out = Vec::new();
    while let Some(ready) = engine.poll_ready() {
        store.persist(&ready.persist).expect("persist");
        engine.advance(ready.number).expect("advance");
        out.push(ready);
    }
    out
}

/// The push response JSON for `id` among `outputs`.
pub fn push_answer(outputs: &[Output], id: u64) -> Option<(u16, Value)> {
    outputs.iter().find_map(|o| match o {
        Output::Response {
            request_id,
            response,
        } if *request_id == RequestId(id) => Some((
            response.status,
            serde_json::from_slice(&response.body).expect("json body"),
        )),
        _ => None,
    })
}

pub fn pokes(outputs: &[Output]) -> Vec<(String, u64)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Poke { scope, cursor } => Some((scope.clone(), *cursor)),
            _ => None,
        })
        .collect()
}
