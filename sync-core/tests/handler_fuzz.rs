//! Property tests of the request handler against malformed input: never a
//! panic, always a JSON `{"code","error"}` body with a matching status, and
//! whatever parses is served by the engine without panicking.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use sync_core::handler::{Limits, parse_http, parse_ws_request};
use sync_core::{MemoryStore, RequestId, Response};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z_]{0,8}".prop_map(Value::String),
        prop_oneof![
            Just("put"),
            Just("delete"),
            Just("incr"),
            Just("pair"),
            Just("fail"),
            Just("mutations"),
            Just("id"),
            Just("name"),
            Just("key"),
            Just("value"),
            Just("seq"),
            Just("client_id"),
            Just("scope"),
            Just("cursor"),
            Just("limit")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("mutations".to_string()),
                    Just("id".to_string()),
                    Just("name".to_string()),
                    Just("args".to_string()),
                    Just("key".to_string()),
                    Just("value".to_string()),
                    Just("seq".to_string()),
                    Just("client_id".to_string()),
                    Just("scope".to_string()),
                    Just("cursor".to_string()),
                    Just("limit".to_string()),
                    "[a-z]{1,4}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn check_error(r: &Response) -> Result<(), TestCaseError> {
    let v: Value =
        serde_json::from_slice(&r.body).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(v["code"].is_string() && v["error"].is_string(), "{v}");
    let code = sync_core::ErrorCode::from_wire(v["code"].as_str().unwrap());
    prop_assert_eq!(code.map(|c| c.status()), Some(r.status));
    Ok(())
}

fn serve(request: sync_core::SyncRequest) -> Result<(), TestCaseError> {
    let mut e = engine();
    let mut store = MemoryStore::new();
    if let Some(r) = e.handle_request(T0, RequestId(1), request) {
        if !r.is_success() {
            check_error(&r)?;
        }
        return Ok(());
    }
    flush(&mut e, &mut store);
    let out = drain(&mut e);
    let (status, body) = push_answer(&out, 1).expect("push answered");
    prop_assert_eq!(status, 200);
    prop_assert!(body["results"].is_array());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(
        method in prop_oneof![Just("GET".to_string()), Just("POST".to_string()), "[A-Z]{0,6}"],
        path in prop_oneof![Just("/push".to_string()), Just("/pull".to_string()), Just("/snapshot".to_string()), ".{0,12}"],
        query in ".{0,40}",
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        match parse_http(&method, &path, &query, &body, &Limits::default()) {
            Ok(req) => serve(req)?,
            Err(r) => check_error(&r)?,
        }
    }

    #[test]
    fn arbitrary_json_never_panics(
        op in prop_oneof![Just("/push"), Just("/pull"), Just("/snapshot")],
        body in json_value(),
    ) {
        let bytes = body.to_string();
        match parse_http("POST", op, "", bytes.as_bytes(), &Limits::default()) {
            Ok(req) => serve(req)?,
            Err(r) => check_error(&r)?,
        }
        let data = json!({"rid": 1, "op": op.trim_start_matches('/'), "body": body});
        match parse_ws_request(&data, bytes.len(), &Limits::default()) {
            Ok(ws) => serve(ws.request)?,
            Err((rid, r)) => {
                prop_assert_eq!(rid, json!(1));
                check_error(&r)?;
            }
        }
    }

    #[test]
    fn arbitrary_mutations_never_panic(
        mutations in proptest::collection::vec(
            (
                "[a-z]{0,3}",
                prop_oneof![Just("put"), Just("delete"), Just("incr"), Just("pair"), Just("fail"), Just("nope")],
                json_value(),
                proptest::option::of("[ab]{0,2}"),
                proptest::option::of(0u64..4),
                prop_oneof![Just(""), Just("s"), Just("t")],
            ),
            1..8,
        )
    ) {
        let list: Vec<Value> = mutations
            .into_iter()
            .map(|(id, name, args, client, seq, scope)| {
                json!({"id": id, "name": name, "args": args, "client_id": client, "seq": seq, "scope": scope})
            })
            .collect();
        let bytes = Value::Array(list).to_string();
        match parse_http("POST", "/push", "", bytes.as_bytes(), &Limits::default()) {
            Ok(req) => serve(req)?,
            Err(r) => check_error(&r)?,
        }
    }
}
