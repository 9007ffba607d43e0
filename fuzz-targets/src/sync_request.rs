//! Sync request handling from arbitrary method, path, query and body: never a
//! panic, every rejection a JSON `{"code","error"}` body whose status is the
//! code's (404 unknown route, 405 wrong method, 413 body over the limit, 400 the
//! rest), and whatever parses is served by an engine with some history into a
//! well-formed JSON answer. The body is also tried as a WebSocket sync message.

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Value, json};
use sync_core::handler::{Limits, parse_http, parse_ws_request};
use sync_core::testing::app;
use sync_core::{
    Engine, EngineConfig, ErrorCode, KvApp, MemoryStore, Mutation, Output, RequestId, Response,
    Store, SyncRequest, Timestamp,
};

/// The fuzz input.
#[derive(Debug, Arbitrary)]
pub struct Input {
    method: Method,
    path: Path,
    query: String,
    body: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
enum Method {
    Get,
    Post,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Path {
    Push,
    Pull,
    Snapshot,
    Other(String),
}

const WALL: Timestamp = Timestamp(1_795_328_895_000);

fn limits() -> Limits {
    Limits {
        max_body_bytes: 2048,
        max_push_batch: 8,
        ..Limits::default()
    }
}

/// Runs one input; panics on a broken rule.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let method = match &input.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Other(m) => m.as_str(),
    };
    let path = match &input.path {
        Path::Push => "/push",
        Path::Pull => "/pull",
        Path::Snapshot => "/snapshot",
        Path::Other(p) => p.as_str(),
    };
    let limits = limits();
    match parse_http(method, path, &input.query, &input.body, &limits) {
        Ok(request) => serve(request),
        Err(response) => {
            let code = check_error(&response);
            let route = path.trim_start_matches('/').trim_end_matches('/');
            let known = ["push", "pull", "snapshot"].contains(&route);
            if !known {
                assert_eq!(code, ErrorCode::NotFound, "unknown route {path:?}");
            } else if method != "POST" && !(method == "GET" && route != "push") {
                assert_eq!(code, ErrorCode::MethodNotAllowed);
            } else if method == "POST" && input.body.len() > limits.max_body_bytes {
                assert_eq!(code, ErrorCode::PayloadTooLarge);
            }
        }
    }
    if let Ok(body) = serde_json::from_slice::<Value>(&input.body) {
        let op = path.trim_start_matches('/');
        let message = json!({"rid": 7, "op": op, "body": body});
        match parse_ws_request(&message, input.body.len(), &limits) {
            Ok(ws) => {
                assert_eq!(ws.rid, json!(7));
                serve(ws.request);
            }
            Err((rid, response)) => {
                assert_eq!(rid, json!(7));
                check_error(&response);
            }
        }
    }
}

/// An error body is `{"code","error"}` and its status is the code's; returns
/// the code.
fn check_error(r: &Response) -> ErrorCode {
    assert!(!r.is_success(), "an error has an error status");
    let v: Value = serde_json::from_slice(&r.body).expect("error bodies are JSON");
    assert!(v["error"].is_string(), "{v}");
    let code = v["code"].as_str().and_then(ErrorCode::from_wire);
    let code = code.unwrap_or_else(|| panic!("unknown error code in {v}"));
    assert_eq!(code.status(), r.status, "{v}");
    code
}

/// An engine with a short history in scope "s": three puts from one client.
fn engine(store: &mut MemoryStore) -> Engine<KvApp> {
    let mut e = Engine::new(app(), EngineConfig::default());
    let history = (1..=3)
        .map(|seq| Mutation {
            id: format!("m{seq}"),
            scope: "s".into(),
            name: "put".into(),
            args: Some(json!({"key": format!("k{seq}"), "value": seq})),
            client_id: Some("c".into()),
            seq: Some(seq),
        })
        .collect();
    e.handle_push(WALL, RequestId(0), history);
    settle(&mut e, store);
    e
}

/// Persists every ready batch and returns the outputs released.
fn settle(e: &mut Engine<KvApp>, store: &mut MemoryStore) -> Vec<Output> {
    while let Some(ready) = e.poll_ready() {
        store.persist(&ready.persist).expect("memory store");
        e.advance(ready.number).expect("advance");
    }
    std::iter::from_fn(|| e.poll_output()).collect()
}

fn serve(request: SyncRequest) {
    let mut store = MemoryStore::new();
    let mut e = engine(&mut store);
    let pushed = match &request {
        SyncRequest::Push(p) => Some(p.mutations.len()),
        _ => None,
    };
    let response = match e.handle_request(WALL, RequestId(1), request) {
        Some(r) => r,
        None => settle(&mut e, &mut store)
            .into_iter()
            .find_map(|o| match o {
                Output::Response {
                    request_id: RequestId(1),
                    response,
                } => Some(response),
                _ => None,
            })
            .expect("a push is answered once durable"),
    };
    if !response.is_success() {
        check_error(&response);
        return;
    }
    let v: Value = serde_json::from_slice(&response.body).expect("answers are JSON");
    if let Some(n) = pushed {
        let results = v["results"].as_array().expect("push results");
        assert_eq!(results.len(), n);
        for r in results {
            assert!(r["ok"].is_boolean(), "{r}");
        }
    } else {
        assert!(
            v["next_cursor"].is_u64() || v["cursor"].is_u64(),
            "pull or snapshot answer {v}"
        );
    }
}
