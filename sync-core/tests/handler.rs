//! The shared request handler: routes, limits, JSON errors, scope
//! authorization, and the WebSocket encoding.

mod common;

use common::*;
use serde_json::{Value, json};
use sync_core::handler::{
    Limits, Operation, SyncRequest, encode_ws_response, parse_http, parse_ws_request,
};
use sync_core::{MemoryStore, RequestId, Response};

fn err(r: Result<SyncRequest, Response>) -> (u16, Value) {
    let r = r.expect_err("an error");
    (
        r.status,
        serde_json::from_slice(&r.body).expect("JSON error body"),
    )
}

#[test]
fn routes_methods_and_sizes() {
    let l = Limits::default();
    assert_eq!(err(parse_http("POST", "/nope", "", b"{}", &l)).0, 404);
    let (s, b) = err(parse_http("GET", "/push", "", b"", &l));
    assert_eq!((s, b["code"].clone()), (405, json!("method_not_allowed")));
    assert_eq!(err(parse_http("DELETE", "/pull", "", b"", &l)).0, 405);
    let small = Limits {
        max_body_bytes: 10,
        ..l
    };
    let (s, b) = err(parse_http("POST", "/pull", "", &[b' '; 11], &small));
    assert_eq!((s, b["code"].clone()), (413, json!("payload_too_large")));
    assert_eq!(
        err(parse_http("POST", "/push", "", b"{", &l)).1["code"],
        json!("invalid_mutation")
    );
}

#[test]
fn push_bodies() {
    let l = Limits::default();
    let m = json!({"id":"1","name":"put","args":{"key":"a","value":1}});
    let wrapped = json!({"mutations":[m]}).to_string();
    let bare = json!([m]).to_string();
    let a = parse_http("POST", "/push", "", wrapped.as_bytes(), &l).unwrap();
    let b = parse_http("POST", "push", "", bare.as_bytes(), &l).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        err(parse_http("POST", "/push", "", b"[]", &l)).1["error"],
        json!("no mutations provided")
    );
    let many = Value::Array(vec![m.clone(); 101]).to_string();
    let (s, b) = err(parse_http("POST", "/push", "", many.as_bytes(), &l));
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("too many"));
    for bad in [
        json!([{"name":"put"}]),
        json!([{"id":"x","name":""}]),
        json!([{"id":"x","name":"put","seq":1}]),
        json!([{"id":"x","name":"put","client_id":"c","seq":0}]),
        json!([{"id":5,"name":"put"}]),
        json!({"mutations": 3}),
        json!("push"),
    ] {
        let (s, b) = err(parse_http(
            "POST",
            "/push",
            "",
            bad.to_string().as_bytes(),
            &l,
        ));
        assert_eq!(
            (s, b["code"].clone()),
            (400, json!("invalid_mutation")),
            "{bad}"
        );
    }
}

/// go-mizu's browser sync client names the client `client`, not `client_id`,
/// and sends `created_at`: both parse to the same request as our own field
/// names. Giving both names at once is refused, not silently resolved.
/// Scopes, mutation ids and client ids longer than the limit, or holding a
/// NUL character, are refused with 400 before anything reaches the engine
/// or a store (which might not be able to key records by them), by every
/// route; at the limit they pass, and NUL inside arguments is only data.
#[test]
fn keys_longer_than_the_limit_are_refused() {
    let l = Limits {
        max_key_bytes: 8,
        ..Limits::default()
    };
    let push = |scope: &str, id: &str, client: &str| {
        let body = json!({"mutations": [{"id": id, "scope": scope, "name": "put",
            "client_id": client, "seq": 1}]});
        parse_http("POST", "/push", "", body.to_string().as_bytes(), &l)
    };
    assert!(push("12345678", "12345678", "12345678").is_ok());
    for (scope, id, client, field, why) in [
        ("123456789", "i", "c", "scope", "bytes long"),
        ("s", "123456789", "c", "id", "bytes long"),
        ("s", "i", "123456789", "client_id", "bytes long"),
        ("s\0", "i", "c", "scope", "NUL"),
        ("s", "i\0", "c", "id", "NUL"),
        ("s", "i", "\0", "client_id", "NUL"),
    ] {
        let (status, body) = err(push(scope, id, client));
        assert_eq!((status, &body["code"]), (400, &json!("invalid_mutation")));
        let message = body["error"].as_str().expect("a message");
        assert!(
            message.contains(field) && message.contains(why),
            "{message}"
        );
    }
    let body = json!({"mutations": [{"id": "i", "scope": "s", "name": "put",
        "args": {"key": "k\0", "value": "v\0"}}]});
    assert!(parse_http("POST", "/push", "", body.to_string().as_bytes(), &l).is_ok());
    assert_eq!(
        err(parse_http("GET", "/pull", "scope=a%00b", b"", &l)).0,
        400,
        "a NUL in a query"
    );
    let long = "é".repeat(5);
    for (method, path, query, body) in [
        ("GET", "/pull", format!("scope={long}"), String::new()),
        (
            "GET",
            "/snapshot",
            format!("scope=s&client_id={long}"),
            String::new(),
        ),
        (
            "POST",
            "/pull",
            String::new(),
            json!({"scope": long}).to_string(),
        ),
        (
            "POST",
            "/snapshot",
            String::new(),
            json!({"scope": long}).to_string(),
        ),
    ] {
        let (status, _) = err(parse_http(method, path, &query, body.as_bytes(), &l));
        assert_eq!(status, 400, "{method} {path} {query} {body}");
    }
    let ws = json!({"op": "pull", "rid": 1, "body": {"scope": long}});
    assert!(parse_ws_request(&ws, 64, &l).is_err());
}

#[test]
fn mizu_client_field_names_parse_like_ours() {
    let l = Limits::default();
    let mizu = json!({"mutations":[{
        "id":"m1","name":"put","scope":"todos","client":"tab-1","seq":1,
        "args":{"key":"a","value":1},"created_at":"2026-01-01T00:00:00.000Z"
    }]});
    let ours = json!({"mutations":[{
        "id":"m1","name":"put","scope":"todos","client_id":"tab-1","seq":1,
        "args":{"key":"a","value":1}
    }]});
    let a = parse_http("POST", "/push", "", mizu.to_string().as_bytes(), &l).unwrap();
    let b = parse_http("POST", "/push", "", ours.to_string().as_bytes(), &l).unwrap();
    assert_eq!(a, b);
    let both = json!([{"id":"m1","name":"put","client":"a","client_id":"a","seq":1}]);
    let (s, body) = err(parse_http(
        "POST",
        "/push",
        "",
        both.to_string().as_bytes(),
        &l,
    ));
    assert_eq!((s, body["code"].clone()), (400, json!("invalid_mutation")));
    assert!(
        body["error"].as_str().unwrap().contains("client_id"),
        "{body}"
    );
}

#[test]
fn pull_and_snapshot_by_get_and_post_with_limit_caps() {
    let l = Limits::default();
    let SyncRequest::Pull(p) =
        parse_http("GET", "/pull", "scope=a%20b&cursor=7&limit=5000", b"", &l).unwrap()
    else {
        panic!("pull")
    };
    assert_eq!((p.scope.as_str(), p.cursor, p.limit), ("a b", 7, 1000));
    let SyncRequest::Pull(p) = parse_http("POST", "/pull", "", b"", &l).unwrap() else {
        panic!("pull")
    };
    assert_eq!((p.cursor, p.limit), (0, 100));
    let SyncRequest::Pull(p) = parse_http(
        "POST",
        "/pull",
        "",
        br#"{"scope":"x","cursor":3,"limit":7}"#,
        &l,
    )
    .unwrap() else {
        panic!("pull")
    };
    assert_eq!((p.scope.as_str(), p.cursor, p.limit), ("x", 3, 7));
    assert_eq!(err(parse_http("GET", "/pull", "cursor=-1", b"", &l)).0, 400);
    // As in go-mizu, a non-positive limit means the default.
    for (q, body) in [("limit=-5", &b""[..]), ("", &br#"{"limit":-5}"#[..])] {
        let method = if body.is_empty() { "GET" } else { "POST" };
        let SyncRequest::Pull(p) = parse_http(method, "/pull", q, body, &l).unwrap() else {
            panic!("pull")
        };
        assert_eq!(p.limit, 100);
    }
    assert_eq!(
        err(parse_http("POST", "/pull", "", br#"{"cursor":-1}"#, &l)).0,
        400
    );
    assert_eq!(err(parse_http("GET", "/pull", "scope=%zz", b"", &l)).0, 400);
    let SyncRequest::Snapshot(s) = parse_http("GET", "/snapshot", "scope=q", b"", &l).unwrap()
    else {
        panic!("snapshot")
    };
    assert_eq!(s.scope, "q");
}

#[test]
fn a_request_lists_the_scopes_it_names_an_empty_one_as_default() {
    let l = Limits::default();
    let body = json!([{"id":"1","name":"put","scope":"a","args":{"key":"a","value":1}},
                      {"id":"2","name":"put","args":{"key":"b","value":2}},
                      {"id":"3","name":"put","scope":"a","args":{"key":"c","value":3}}]);
    let push = parse_http("POST", "/push", "", body.to_string().as_bytes(), &l).unwrap();
    assert_eq!(push.scopes().collect::<Vec<_>>(), ["a", "_default", "a"]);
    let pull = parse_http("GET", "/pull", "scope=q", b"", &l).unwrap();
    assert_eq!(pull.scopes().collect::<Vec<_>>(), ["q"]);
    let snapshot = parse_http("GET", "/snapshot", "", b"", &l).unwrap();
    assert_eq!(snapshot.scopes().collect::<Vec<_>>(), ["_default"]);
}

#[test]
fn authorize_scopes_overrides_claims_and_refuses_with_403() {
    let l = Limits::default();
    let body = json!([{"id":"1","name":"put","scope":"theirs","args":{"key":"a","value":1}},
                      {"id":"2","name":"put","args":{"key":"b","value":2}}]);
    let mut req = parse_http("POST", "/push", "", body.to_string().as_bytes(), &l).unwrap();
    let mut seen = Vec::new();
    req.authorize_scopes(|claimed| {
        seen.push(claimed.to_owned());
        Ok("user:7".to_owned())
    })
    .unwrap();
    assert_eq!(seen, vec!["theirs", "_default"]);
    let SyncRequest::Push(p) = &req else { panic!() };
    assert!(p.mutations.iter().all(|m| m.scope == "user:7"));

    let mut e = engine();
    let mut store = MemoryStore::new();
    assert!(e.handle_request(T0, RequestId(1), req).is_none());
    flush(&mut e, &mut store);
    assert_eq!(pokes(&drain(&mut e)), vec![("user:7".to_string(), 2)]);

    let mut req = parse_http("GET", "/snapshot", "scope=other", b"", &l).unwrap();
    let refused = req
        .authorize_scopes(|_| Err("not yours".into()))
        .unwrap_err();
    assert_eq!(refused.status, 403);
    let b: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(b, json!({"code":"forbidden","error":"not yours"}));
}

#[test]
fn websocket_round_trip_shares_bodies_with_http() {
    let l = Limits::default();
    let mut e = engine();
    let mut store = MemoryStore::new();
    let data = json!({"rid": "r1", "op": "push", "body": {"mutations": [
        {"id":"1","name":"put","args":{"key":"a","value":1}}]}});
    let ws = parse_ws_request(&data, 100, &l).unwrap();
    assert_eq!(ws.request.operation(), Operation::Push);
    assert!(e.handle_request(T0, RequestId(9), ws.request).is_none());
    flush(&mut e, &mut store);
    let out = drain(&mut e);
    let response = out
        .iter()
        .find_map(|o| match o {
            sync_core::Output::Response { response, .. } => Some(response.clone()),
            _ => None,
        })
        .unwrap();
    let text = encode_ws_response(&ws.rid, &response);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["topic"], json!("_sync"));
    assert_eq!(v["data"]["rid"], json!("r1"));
    assert_eq!(v["data"]["status"], json!(200));
    assert_eq!(v["data"]["body"]["results"][0]["cursor"], json!(1));

    let data = json!({"rid": 2, "op": "pull", "body": {"cursor": 0}});
    let ws = parse_ws_request(&data, 100, &l).unwrap();
    let r = e.handle_request(T0, RequestId(10), ws.request).unwrap();
    let v: Value = serde_json::from_str(&encode_ws_response(&ws.rid, &r)).unwrap();
    assert_eq!(v["data"]["body"]["next_cursor"], json!(1));

    let (rid, r) = parse_ws_request(&json!({"rid": 3, "op": "drop"}), 10, &l).unwrap_err();
    assert_eq!((rid, r.status), (json!(3), 404));
    let (_, r) = parse_ws_request(&json!({"rid": 4, "op": "pull"}), 1 << 30, &l).unwrap_err();
    assert_eq!(r.status, 413);
    let (rid, r) = parse_ws_request(&json!("junk"), 10, &l).unwrap_err();
    assert_eq!((rid, r.status), (Value::Null, 400));
}
