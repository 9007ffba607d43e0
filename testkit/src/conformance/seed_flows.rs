//! The browser-side flows of the two seeds, replayed as their clients do them.
//!
//! - The integration guide's client: subscribe to `sync:<scope>`, push a bare
//!   array, and on each poke `GET {prefix}/pull?scope=&cursor=&limit=` from its
//!   cursor until `has_more` is false.
//! - go-mizu's http transport: `POST /push {"mutations":[..]}`, `POST /pull
//!   {"scope","cursor","limit"}`, `POST /snapshot {"scope"}`, with the response
//!   field names of that transport.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Ctx;
use super::sync_cases::{cursors, pull_ok, push_ok};
use crate::sync_client::{SyncHttp, kv_lookup, mentions, push_body, put, with_client};

/// A replica as the guide's client keeps it: a cursor and the keys it has seen.
struct GuideClient {
    http: SyncHttp,
    scope: String,
    cursor: u64,
    changes: Vec<Value>,
}

impl GuideClient {
    /// The guide's pull loop: GET with query parameters until `has_more` is false.
    async fn pull(&mut self) {
        for _ in 0..1000 {
            let r = self
                .http
                .pull_get(&self.scope, self.cursor, Some(50))
                .await
                .expect("GET pull");
            assert_eq!(r.status, 200, "guide pull: {}", r.text());
            let page = r.json();
            let changes = page["changes"].as_array().cloned().unwrap_or_default();
            for c in &changes {
                let cur = c["cursor"].as_u64().expect("cursor");
                assert!(
                    cur > self.cursor,
                    "cursor went backwards: {c} after {}",
                    self.cursor
                );
            }
            self.changes.extend(changes);
            self.cursor = page["next_cursor"].as_u64().expect("next_cursor");
            if page["has_more"] != true {
                return;
            }
        }
        panic!("guide pull never finished");
    }

    fn has_key(&self, key: &str) -> bool {
        self.changes.iter().any(|c| mentions(&c["data"], key))
    }
}

/// Two tabs of one user: one pushes bare arrays, both pull on every poke with the
/// GET form, and both end with the same changes in the same order.
pub(super) async fn seed_integration_guide_client_flow(cx: &Ctx<'_>) {
    let scope = "user:alice";
    let topic = format!("sync:{scope}");
    let mut tabs = Vec::new();
    for _ in 0..2 {
        let mut ws = cx.ws("alice").await;
        ws.subscribe(&topic).await;
        assert!(ws.barrier().await.is_empty());
        let mut client = GuideClient {
            http: cx.http(Some("alice")),
            scope: scope.to_owned(),
            cursor: 0,
            changes: Vec::new(),
        };
        client.pull().await;
        tabs.push((ws, client));
    }

    for round in 0..3u64 {
        let mutations: Vec<Value> = (0..4)
            .map(|i| {
                let n = round * 4 + i + 1;
                with_client(
                    put(
                        &format!("g-{n}"),
                        scope,
                        &format!("todo-{n}"),
                        json!({"title": n}),
                    ),
                    "tab-0",
                    n,
                )
            })
            .collect();
        // The guide's client posts a bare array.
        let results = push_ok(&mut tabs[0].1.http, &Value::Array(mutations)).await;
        let last = results
            .last()
            .and_then(|r| r["cursor"].as_u64())
            .expect("cursor");
        for (ws, client) in &mut tabs {
            // Pull on pokes until the poked cursor is reached (pokes may coalesce).
            loop {
                let (poke, _) = ws.recv_topic(&topic).await;
                let poked = poke["data"]["cursor"].as_u64().expect("poke cursor");
                client.pull().await;
                assert!(
                    client.cursor >= poked,
                    "pulled to {} after poke {poked}",
                    client.cursor
                );
                if client.cursor >= last {
                    break;
                }
            }
        }
    }
    let (a, b) = (&tabs[0].1, &tabs[1].1);
    assert_eq!(a.changes, b.changes, "tabs diverged");
    assert_eq!(a.changes.len(), 12);
    for n in 1..=12 {
        assert!(a.has_key(&format!("todo-{n}")), "todo-{n} missing");
    }
}

/// go-mizu's http transport, field by field.
pub(super) async fn seed_mizu_http_transport_flow(cx: &Ctx<'_>) {
    let scope = "shared";
    let mut h = cx.http(Some("alice"));
    let r = h
        .push(&push_body(&[
            put("mz1", scope, "a", json!(1)),
            put("mz2", scope, "b", json!([true])),
        ]))
        .await
        .expect("push");
    assert_eq!(r.status, 200, "{}", r.text());
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    let body = r.json();
    let results = body["results"].as_array().expect("results");
    for res in results {
        assert_eq!(res["ok"], true);
        assert!(res["cursor"].is_u64(), "result without cursor: {res}");
    }

    // mizu's client omits `limit` and sends the scope in the body.
    let r = h
        .call(
            http::Method::POST,
            "/pull",
            json!({"scope": scope, "cursor": 0}).to_string(),
        )
        .await
        .expect("pull");
    assert_eq!(r.status, 200);
    let page = r.json();
    let fields: BTreeMap<&str, bool> = page
        .as_object()
        .expect("object")
        .keys()
        .map(|k| (k.as_str(), true))
        .collect();
    for f in ["changes", "has_more", "next_cursor"] {
        assert!(fields.contains_key(f), "pull response lacks {f}: {page}");
    }
    assert_eq!(cursors(&page), vec![1, 2]);
    for c in page["changes"].as_array().expect("changes") {
        for f in ["cursor", "scope", "time", "data"] {
            assert!(c.get(f).is_some(), "change lacks {f}: {c}");
        }
        assert!(
            c["data"].is_object() || c["data"].is_array(),
            "data must be embedded JSON: {c}"
        );
    }

    let r = h
        .call(
            http::Method::POST,
            "/snapshot",
            json!({"scope": scope}).to_string(),
        )
        .await
        .expect("snapshot");
    assert_eq!(r.status, 200);
    let snap = r.json();
    assert_eq!(snap["cursor"], 2, "{snap}");
    assert_eq!(kv_lookup(&snap["data"], "b"), Some(&json!([true])));

    // Another user reads the shared scope the same way.
    let mut bob = cx.http(Some("bob"));
    let page2 = pull_ok(&mut bob, scope, 0, Some(100)).await;
    assert_eq!(page2, page);
}
