//! Cases of the sync operations carried over the live WebSocket.
//!
//! Request: `{"topic":"_sync","data":{"rid":<any JSON>,"op":"push"|"pull"|"snapshot",
//! "body":<the HTTP body as JSON>}}`. Reply, to the sender only:
//! `{"topic":"_sync","data":{"rid":<same>,"status":<HTTP status>,"body":<HTTP JSON>}}`.

use serde_json::{Value, json};

use super::{Ctx, assert_error_body};
use crate::sync_client::{kv_lookup, push_body, put, with_client};
use crate::ws_client::WsClient;

async fn call(ws: &mut WsClient, rid: Value, op: &str, body: Value) -> (u64, Value) {
    let (status, body, _) = call_collect(ws, rid, op, body).await;
    (status, body)
}

/// Like [`call`], also returning the other messages read before the reply (a
/// poke may come before or after the push's reply: their order is not fixed).
async fn call_collect(
    ws: &mut WsClient,
    rid: Value,
    op: &str,
    body: Value,
) -> (u64, Value, Vec<Value>) {
    ws.send(&json!({"topic": "_sync", "data": {"rid": rid, "op": op, "body": body}}))
        .await;
    let mut skipped = Vec::new();
    loop {
        let m = ws.recv_message().await;
        if m["topic"] == "_sync" && m["data"]["rid"] == rid {
            let status = m["data"]["status"]
                .as_u64()
                .unwrap_or_else(|| panic!("_sync reply without status: {m}"));
            return (status, m["data"]["body"].clone(), skipped);
        }
        assert_ne!(
            m["topic"], "error",
            "_sync {op} answered with an error frame: {m}"
        );
        skipped.push(m);
    }
}

/// Push, pull and snapshot over the WebSocket answer exactly like HTTP, and a
/// push over the WebSocket pokes like one over HTTP.
pub(super) async fn sync_over_websocket_push_pull_snapshot(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut ws = cx.ws("alice").await;
    ws.subscribe("sync:user:alice").await;
    ws.barrier().await;

    let m = with_client(put("w1", s, "wk", json!("via ws")), "ws-client", 1);
    let (status, body, early) = call_collect(
        &mut ws,
        json!(1),
        "push",
        push_body(std::slice::from_ref(&m)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["ok"], true, "{body}");
    let cursor = body["results"][0]["cursor"].as_u64().expect("cursor");
    let poke = match early.into_iter().find(|m| m["topic"] == "sync:user:alice") {
        Some(p) => p,
        None => ws.recv_topic("sync:user:alice").await.0,
    };
    assert_eq!(poke["data"]["cursor"], cursor);

    // A bare array works here as over HTTP, and a replay returns the same result.
    let (status, again) = call(&mut ws, json!("r-2"), "push", json!([m])).await;
    assert_eq!(status, 200);
    assert_eq!(again["results"], body["results"]);

    let (status, page) = call(
        &mut ws,
        json!({"any": "json"}),
        "pull",
        json!({"scope": s, "cursor": 0}),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["changes"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["next_cursor"], cursor);
    assert_eq!(page["has_more"], false);

    let mut http = cx.http(Some("alice"));
    let r = http.pull(s, 0, None).await.expect("pull");
    assert_eq!(r.json(), page, "WebSocket and HTTP pull differ");

    let (status, snap) = call(&mut ws, json!(4), "snapshot", json!({"scope": s})).await;
    assert_eq!(status, 200, "{snap}");
    assert_eq!(snap["cursor"], cursor);
    assert_eq!(kv_lookup(&snap["data"], "wk"), Some(&json!("via ws")));
}

/// Errors over the WebSocket are replies with the HTTP status and error body;
/// the connection stays usable.
pub(super) async fn sync_over_websocket_errors_keep_the_connection(cx: &Ctx<'_>) {
    let mut ws = cx.ws("alice").await;
    let (status, body) = call(
        &mut ws,
        json!(1),
        "pull",
        json!({"scope": "user:bob", "cursor": 0}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error_body(&body, "forbidden", "pull user:bob over ws");
    let (status, body) = call(&mut ws, json!(2), "push", json!({"mutations": []})).await;
    assert_eq!(status, 400, "{body}");
    assert_error_body(&body, "invalid_mutation", "empty push over ws");
    let (status, body) = call(
        &mut ws,
        json!(3),
        "pull",
        json!({"scope": "user:alice", "cursor": "x"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(&mut ws, json!(4), "frobnicate", json!({})).await;
    assert_eq!(status, 404, "unknown op: {body}");
    assert_error_body(&body, "not_found", "unknown op over ws");

    let (status, _) = call(
        &mut ws,
        json!(5),
        "push",
        push_body(&[put("e1", "user:alice", "k", json!(1))]),
    )
    .await;
    assert_eq!(status, 200);
    // Still alive and still echoing.
    assert!(ws.barrier().await.is_empty());
}
