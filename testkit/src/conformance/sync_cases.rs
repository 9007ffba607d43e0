//! Cases of the sync protocol over HTTP: push, pull, snapshot, pagination, trim,
//! idempotency, bad bodies, authorization and pokes.

use http::Method;
use serde_json::{Value, json};

use super::{Ctx, assert_error_body};
use crate::raw_http::RawConn;
use crate::sync_client::{
    SyncHttp, delete, kv_lookup, mentions, push_body, put, put_many, with_client,
};

/// Pushes and asserts 200 with one ok result per mutation; returns the results.
pub(super) async fn push_ok(http: &mut SyncHttp, body: &Value) -> Vec<Value> {
    let r = http.push(body).await.expect("push response");
    assert_eq!(r.status, 200, "push {body}: {}", r.text());
    let results = r.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("push response without results: {}", r.text()));
    let n = body
        .as_array()
        .or_else(|| body["mutations"].as_array())
        .map_or(0, Vec::len);
    assert_eq!(results.len(), n, "one result per mutation: {results:?}");
    for res in &results {
        assert_eq!(res["ok"], true, "mutation failed: {res}");
    }
    results
}

/// Pulls one page and asserts 200; returns the response JSON.
pub(super) async fn pull_ok(
    http: &mut SyncHttp,
    scope: &str,
    cursor: u64,
    limit: Option<u64>,
) -> Value {
    let r = http
        .pull(scope, cursor, limit)
        .await
        .expect("pull response");
    assert_eq!(r.status, 200, "pull {scope} from {cursor}: {}", r.text());
    r.json()
}

pub(super) fn cursors(page: &Value) -> Vec<u64> {
    page["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("pull page without changes array: {page}"))
        .iter()
        .map(|c| {
            c["cursor"]
                .as_u64()
                .unwrap_or_else(|| panic!("change without cursor: {c}"))
        })
        .collect()
}

async fn snapshot_ok(http: &mut SyncHttp, scope: &str) -> Value {
    let r = http.snapshot(scope).await.expect("snapshot response");
    assert_eq!(r.status, 200, "snapshot {scope}: {}", r.text());
    r.json()
}

/// Push applies and returns dense cursors; pull returns the changes with their
/// fields; snapshot reflects puts and deletes at the latest cursor.
pub(super) async fn sync_push_pull_snapshot_basics(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let results = push_ok(
        &mut h,
        &push_body(&[
            with_client(put("m1", s, "k1", json!("v1")), "c1", 1),
            with_client(put("m2", s, "k2", json!({"nested": [1, 2]})), "c1", 2),
        ]),
    )
    .await;
    assert_eq!(
        results[0]["cursor"], 1,
        "cursors are dense from 1: {results:?}"
    );
    assert_eq!(
        results[1]["cursor"], 2,
        "cursors are dense from 1: {results:?}"
    );

    let page = pull_ok(&mut h, s, 0, None).await;
    assert_eq!(cursors(&page), vec![1, 2], "{page}");
    assert_eq!(page["has_more"], false);
    assert_eq!(page["next_cursor"], 2);
    let changes = page["changes"].as_array().expect("changes");
    for (c, key) in changes.iter().zip(["k1", "k2"]) {
        assert_eq!(c["scope"], s, "{c}");
        assert!(c.get("time").is_some(), "change without time: {c}");
        assert!(
            mentions(&c["data"], key),
            "change {c} does not mention {key}"
        );
    }

    let snap = snapshot_ok(&mut h, s).await;
    assert_eq!(snap["cursor"], 2, "{snap}");
    assert_eq!(kv_lookup(&snap["data"], "k1"), Some(&json!("v1")), "{snap}");
    assert_eq!(
        kv_lookup(&snap["data"], "k2"),
        Some(&json!({"nested": [1, 2]})),
        "{snap}"
    );

    let results = push_ok(
        &mut h,
        &push_body(&[with_client(delete("m3", s, "k1"), "c1", 3)]),
    )
    .await;
    assert_eq!(results[0]["cursor"], 3);
    let snap = snapshot_ok(&mut h, s).await;
    assert_eq!(snap["cursor"], 3);
    assert_eq!(
        kv_lookup(&snap["data"], "k1"),
        None,
        "deleted key still in {snap}"
    );
    assert_eq!(
        kv_lookup(&snap["data"], "k2"),
        Some(&json!({"nested": [1, 2]}))
    );

    let page = pull_ok(&mut h, s, 2, None).await;
    assert_eq!(cursors(&page), vec![3]);
    assert!(mentions(&page["changes"][0]["data"], "k1"));
    // An empty page still carries next_cursor: the request's cursor.
    let page = pull_ok(&mut h, s, 3, None).await;
    assert_eq!(cursors(&page), Vec::<u64>::new());
    assert_eq!(page["has_more"], false);
    assert_eq!(
        page["next_cursor"], 3,
        "empty page must echo the cursor: {page}"
    );

    // Scopes are separate logs with their own cursors.
    let page = pull_ok(&mut h, "shared", 0, None).await;
    assert_eq!(cursors(&page), Vec::<u64>::new());
    let results = push_ok(&mut h, &push_body(&[put("m4", "shared", "k1", json!(1))])).await;
    assert_eq!(results[0]["cursor"], 1, "a new scope starts at cursor 1");
}

/// `GET /pull?scope=&cursor=&limit=` and `GET /snapshot?scope=` answer exactly as
/// their POST forms.
pub(super) async fn sync_get_forms_of_pull_and_snapshot(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let muts: Vec<Value> = (0..5)
        .map(|i| put(&format!("g{i}"), s, &format!("k{i}"), json!(i)))
        .collect();
    push_ok(&mut h, &push_body(&muts)).await;
    for (cursor, limit) in [(0, None), (0, Some(2)), (3, Some(10)), (5, None)] {
        let post = pull_ok(&mut h, s, cursor, limit).await;
        let r = h.pull_get(s, cursor, limit).await.expect("GET pull");
        assert_eq!(r.status, 200, "GET pull: {}", r.text());
        assert_eq!(
            r.json(),
            post,
            "GET and POST pull differ at cursor {cursor} limit {limit:?}"
        );
    }
    let post = snapshot_ok(&mut h, s).await;
    let r = h.snapshot_get(s).await.expect("GET snapshot");
    assert_eq!(r.status, 200, "GET snapshot: {}", r.text());
    assert_eq!(r.json(), post);
}

/// `has_more` and `next_cursor` walk a log page by page without gaps or repeats.
pub(super) async fn sync_pull_pagination_has_more_and_next_cursor(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let muts: Vec<Value> = (0..10)
        .map(|i| put(&format!("p{i}"), s, &format!("k{i}"), json!(i)))
        .collect();
    push_ok(&mut h, &push_body(&muts)).await;
    let mut cursor = 0;
    let mut seen = Vec::new();
    for expected in [vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9], vec![10]] {
        let page = pull_ok(&mut h, s, cursor, Some(3)).await;
        assert_eq!(cursors(&page), expected, "page from {cursor}: {page}");
        let last = *expected.last().expect("non-empty");
        assert_eq!(page["next_cursor"], last, "{page}");
        assert_eq!(page["has_more"], last < 10, "{page}");
        seen.extend(cursors(&page));
        cursor = last;
    }
    assert_eq!(seen, (1..=10).collect::<Vec<u64>>());
    let page = pull_ok(&mut h, s, 10, Some(3)).await;
    assert_eq!(cursors(&page), Vec::<u64>::new());
    assert_eq!(page["next_cursor"], 10);
    assert_eq!(page["has_more"], false);
}

/// Without `limit` a page holds the profile's default; a bigger `limit` is capped.
pub(super) async fn sync_pull_limit_default_and_cap(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let total = cx.profile.pull_limit_max + 50;
    let mut n = 0;
    while n < total {
        let batch: Vec<Value> = (n..(n + cx.profile.push_batch_max).min(total))
            .map(|i| put(&format!("l{i}"), s, &format!("k{i}"), json!(i)))
            .collect();
        n += batch.len();
        push_ok(&mut h, &push_body(&batch)).await;
    }
    let page = pull_ok(&mut h, s, 0, None).await;
    assert_eq!(
        cursors(&page).len(),
        cx.profile.pull_limit_default,
        "default page size"
    );
    assert_eq!(page["has_more"], true);
    let page = pull_ok(&mut h, s, 0, Some(10 * cx.profile.pull_limit_max as u64)).await;
    assert_eq!(
        cursors(&page).len(),
        cx.profile.pull_limit_max,
        "capped page size"
    );
    assert_eq!(page["has_more"], true);
    assert_eq!(page["next_cursor"], cx.profile.pull_limit_max);
    let page = pull_ok(&mut h, s, cx.profile.pull_limit_max as u64, Some(1000)).await;
    assert_eq!(cursors(&page).len(), 50);
    assert_eq!(page["has_more"], false);
}

/// A mutation with several changes is never split across pages, even when the
/// page limit is smaller than the mutation.
pub(super) async fn sync_page_never_splits_a_mutation(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let groups: Vec<Vec<String>> = vec![
        vec!["a1".into(), "a2".into(), "a3".into()],
        vec!["b1".into()],
        vec!["c1".into(), "c2".into(), "c3".into(), "c4".into()],
        vec!["d1".into(), "d2".into()],
    ];
    let muts: Vec<Value> = groups
        .iter()
        .enumerate()
        .map(|(i, keys)| {
            let entries: Vec<(&str, Value)> = keys.iter().map(|k| (k.as_str(), json!(k))).collect();
            put_many(&format!("pm{i}"), s, &entries)
        })
        .collect();
    push_ok(&mut h, &push_body(&muts)).await;

    for limit in [1u64, 2, 3, 5] {
        let mut cursor = 0;
        let mut all: Vec<Value> = Vec::new();
        for _ in 0..20 {
            let page = pull_ok(&mut h, s, cursor, Some(limit)).await;
            let changes = page["changes"].as_array().cloned().unwrap_or_default();
            if page["has_more"] == true {
                assert!(
                    !changes.is_empty(),
                    "limit {limit}: has_more with an empty page: {page}"
                );
            }
            for keys in &groups {
                let inside = keys
                    .iter()
                    .filter(|k| changes.iter().any(|c| mentions(&c["data"], k)))
                    .count();
                assert!(
                    inside == 0 || inside == keys.len(),
                    "limit {limit}: page splits mutation {keys:?}: {page}"
                );
            }
            if let Some(last) = changes.last() {
                assert_eq!(page["next_cursor"], last["cursor"], "{page}");
            }
            cursor = page["next_cursor"].as_u64().expect("next_cursor");
            all.extend(changes);
            if page["has_more"] != true {
                break;
            }
        }
        let total: usize = groups.iter().map(Vec::len).sum();
        assert_eq!(all.len(), total, "limit {limit}: every change exactly once");
        for k in groups.iter().flatten() {
            let n = all.iter().filter(|c| mentions(&c["data"], k)).count();
            assert_eq!(n, 1, "limit {limit}: key {k} appears {n} times");
        }
    }
}

/// After `trim(before)`, pulls from below `before - 1` get 410 `cursor_too_old`;
/// from `before - 1` on they work; a snapshot recovers the full state and its
/// cursor continues the log.
pub(super) async fn sync_trim_gives_410_and_snapshot_recovers(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let muts: Vec<Value> = (1..=5)
        .map(|i| put(&format!("t{i}"), s, &format!("k{i}"), json!(i)))
        .collect();
    push_ok(&mut h, &push_body(&muts)).await;
    cx.server.trim(s, 4).await.expect("trim hook");

    for old in [0u64, 1, 2] {
        let r = h.pull(s, old, None).await.expect("pull");
        assert_eq!(r.status, 410, "pull from {old} after trim(4): {}", r.text());
        assert_error_body(&r.json(), "cursor_too_old", "pull after trim");
        let r = h.pull_get(s, old, None).await.expect("GET pull");
        assert_eq!(
            r.status,
            410,
            "GET pull from {old} after trim(4): {}",
            r.text()
        );
    }
    let page = pull_ok(&mut h, s, 3, None).await;
    assert_eq!(
        cursors(&page),
        vec![4, 5],
        "pull from before-1 must work: {page}"
    );

    let snap = snapshot_ok(&mut h, s).await;
    assert_eq!(snap["cursor"], 5, "{snap}");
    for i in 1..=5 {
        assert_eq!(
            kv_lookup(&snap["data"], &format!("k{i}")),
            Some(&json!(i)),
            "{snap}"
        );
    }
    let page = pull_ok(&mut h, s, 5, None).await;
    assert_eq!(cursors(&page), Vec::<u64>::new());
    push_ok(&mut h, &push_body(&[put("t6", s, "k6", json!(6))])).await;
    let page = pull_ok(&mut h, s, 5, None).await;
    assert_eq!(cursors(&page), vec![6]);
    // Other scopes are untouched by the trim.
    push_ok(&mut h, &push_body(&[put("t7", "shared", "x", json!(0))])).await;
    let page = pull_ok(&mut h, "shared", 0, None).await;
    assert_eq!(cursors(&page), vec![1]);
}

/// Re-sending a mutation with the same `client_id`/`seq` returns its original
/// result and applies it once; a mutation past a gap in the sequence is not applied.
pub(super) async fn sync_replay_by_client_seq_returns_original_result(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let m1 = with_client(put("r1", s, "rk1", json!("first")), "client-r", 1);
    let original = push_ok(&mut h, &push_body(std::slice::from_ref(&m1))).await;
    // Unrelated traffic moves the log on.
    push_ok(&mut h, &push_body(&[put("other", s, "other", json!(0))])).await;
    let again = push_ok(&mut h, &push_body(std::slice::from_ref(&m1))).await;
    assert_eq!(again, original, "replay must return the original result");
    // In a batch with a new mutation: the old one replays, the new one applies.
    let m2 = with_client(put("r2", s, "rk2", json!("second")), "client-r", 2);
    let both = push_ok(&mut h, &push_body(&[m1.clone(), m2.clone()])).await;
    assert_eq!(both[0], original[0]);
    assert!(both[1]["cursor"].as_u64() > original[0]["cursor"].as_u64());
    // And via a bare array, with the body of seq 1 changed: still a replay.
    let changed = with_client(put("r1", s, "rk1", json!("CHANGED")), "client-r", 1);
    let third = push_ok(&mut h, &json!([changed])).await;
    assert_eq!(third[0], original[0]);

    // seq 4 after 2 leaves a gap: never applied.
    let gap = with_client(put("r4", s, "rk4", json!("gap")), "client-r", 4);
    let r = h.push(&push_body(&[gap])).await.expect("push");
    if r.status == 200 {
        assert_eq!(
            r.json()["results"][0]["ok"],
            false,
            "mutation past a gap applied: {}",
            r.text()
        );
    }

    let log = h.pull_all(s, 0).await.expect("pull all");
    for (key, n) in [("rk1", 1), ("rk2", 1), ("rk4", 0)] {
        let found = log.iter().filter(|c| mentions(&c["data"], key)).count();
        assert_eq!(found, n, "{key} appears {found} times in the log");
    }
    let snap = snapshot_ok(&mut h, s).await;
    assert_eq!(kv_lookup(&snap["data"], "rk1"), Some(&json!("first")));
    assert_eq!(kv_lookup(&snap["data"], "rk4"), None);
}

/// Without `client_id`, the mutation id deduplicates: same id, same result,
/// applied once.
pub(super) async fn sync_replay_by_mutation_id_returns_original_result(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let m = put("once-only", s, "idk", json!(1));
    let original = push_ok(&mut h, &push_body(std::slice::from_ref(&m))).await;
    push_ok(
        &mut h,
        &push_body(&[put("between", s, "between", json!(2))]),
    )
    .await;
    let again = push_ok(&mut h, &push_body(std::slice::from_ref(&m))).await;
    assert_eq!(again, original);
    let log = h.pull_all(s, 0).await.expect("pull all");
    assert_eq!(
        log.iter().filter(|c| mentions(&c["data"], "idk")).count(),
        1,
        "{log:?}"
    );
    assert_eq!(log.len(), 2);
}

/// Structurally bad bodies get 400 `invalid_mutation`, apply nothing, and the
/// server keeps serving.
pub(super) async fn sync_bad_bodies_are_400_invalid_mutation(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let too_many: Vec<Value> = (0..=cx.profile.push_batch_max)
        .map(|i| put(&format!("x{i}"), s, &format!("x{i}"), json!(i)))
        .collect();
    let bad_pushes: Vec<(String, String)> = vec![
        ("not json".into(), "{not json".into()),
        ("empty body".into(), String::new()),
        ("no mutations".into(), json!({"mutations": []}).to_string()),
        ("empty bare array".into(), "[]".into()),
        (
            "mutations not a list".into(),
            json!({"mutations": "x"}).to_string(),
        ),
        ("a number".into(), "42".into()),
        (
            "batch over the maximum".into(),
            push_body(&too_many).to_string(),
        ),
    ];
    for (what, body) in bad_pushes {
        let r = h.call(Method::POST, "/push", body).await.expect("push");
        assert_eq!(r.status, 400, "push {what}: {}", r.text());
        assert_error_body(&r.json(), "invalid_mutation", &format!("push {what}"));
    }
    for (what, body) in [
        ("not json", "{oops".to_owned()),
        (
            "cursor not a number",
            json!({"scope": s, "cursor": "abc"}).to_string(),
        ),
        (
            "negative cursor",
            json!({"scope": s, "cursor": -1}).to_string(),
        ),
    ] {
        let r = h.call(Method::POST, "/pull", body).await.expect("pull");
        assert_eq!(r.status, 400, "pull {what}: {}", r.text());
        assert_error_body(&r.json(), "invalid_mutation", &format!("pull {what}"));
    }
    let r = h
        .call(
            Method::GET,
            "/pull?scope=user%3Aalice&cursor=abc",
            bytes::Bytes::new(),
        )
        .await
        .expect("GET pull");
    assert_eq!(r.status, 400, "GET pull with cursor=abc: {}", r.text());
    let r = h
        .call(Method::POST, "/snapshot", "{oops")
        .await
        .expect("snapshot");
    assert_eq!(r.status, 400, "snapshot not json: {}", r.text());
    assert_error_body(&r.json(), "invalid_mutation", "snapshot not json");

    let page = pull_ok(&mut h, s, 0, None).await;
    assert_eq!(
        cursors(&page),
        Vec::<u64>::new(),
        "a rejected push applied something"
    );
    push_ok(&mut h, &push_body(&[put("fine", s, "fine", json!(true))])).await;
}

/// A body over the profile's HTTP limit gets 413 `payload_too_large` and applies
/// nothing.
pub(super) async fn sync_oversize_body_is_413(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let big = "z".repeat(cx.profile.http_body_limit);
    let body = push_body(&[put("huge", s, "huge", json!(big))]);
    let r = h.push(&body).await.expect("response to an oversize push");
    assert_eq!(
        r.status,
        413,
        "{}",
        r.text().chars().take(200).collect::<String>()
    );
    assert_error_body(&r.json(), "payload_too_large", "oversize push");
    // A fresh connection: the server may close the one that carried the body.
    let mut h = cx.http(Some("alice"));
    let page = pull_ok(&mut h, s, 0, None).await;
    assert_eq!(cursors(&page), Vec::<u64>::new());
}

/// A client still sending an oversize body gets its 413 and can finish: the
/// server reads the rest and throws it away instead of closing the connection
/// under the client (which would see a broken pipe, not the answer). Checked by
/// reading the 413 before the body is finished, then finishing it and sending
/// a second request on the same connection: once with `Content-Length`, once
/// chunked.
pub(super) async fn sync_oversize_body_is_discarded_and_the_connection_kept(cx: &Ctx<'_>) {
    let authority = cx
        .server
        .http_base()
        .trim_start_matches("http://")
        .to_owned();
    let prefix = cx.profile.sync_prefix;
    let limit = cx.profile.http_body_limit;
    let second = format!(
        "GET {prefix}/pull?scope=user%3Aalice&cursor=0 HTTP/1.1\r\nHost: {authority}\r\n\
         Authorization: Bearer alice\r\n\r\n"
    );
    let filler = vec![b'z'; 64 * 1024];
    for chunked in [false, true] {
        let what = if chunked { "chunked" } else { "declared" };
        let mut conn = RawConn::connect(&authority).await.expect("connect");
        let length = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", 2 * limit)
        };
        let head = format!(
            "POST {prefix}/push HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer alice\r\n\
             Content-Type: application/json\r\n{length}\r\n\r\n"
        );
        conn.write(head.as_bytes()).await.expect("request head");
        let mut sent = 0;
        let send = async |conn: &mut RawConn, n: usize| {
            if chunked {
                conn.write(format!("{n:x}\r\n").as_bytes()).await?;
                conn.write(&filler[..n]).await?;
                conn.write(b"\r\n").await
            } else {
                conn.write(&filler[..n]).await
            }
        };
        if chunked {
            // Past the limit, so the server has a reason to answer early.
            while sent <= limit {
                send(&mut conn, filler.len())
                    .await
                    .expect("body over the limit");
                sent += filler.len();
            }
        }
        let r = conn
            .read_response()
            .await
            .expect("the 413 before the body ended");
        assert_eq!(r.status, 413, "{what}: {}", r.text());
        assert_error_body(&r.json(), "payload_too_large", what);
        while sent < 2 * limit {
            let n = filler.len().min(2 * limit - sent);
            send(&mut conn, n)
                .await
                .unwrap_or_else(|e| panic!("{what}: the rest of the body after the 413: {e}"));
            sent += n;
        }
        if chunked {
            conn.write(b"0\r\n\r\n").await.expect("last chunk");
        }
        conn.write(second.as_bytes()).await.expect("second request");
        let r = conn
            .read_response()
            .await
            .unwrap_or_else(|e| panic!("{what}: answer on the same connection: {e}"));
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(
            r.json()["changes"],
            json!([]),
            "{what}: the oversize push applied"
        );
    }
}

/// No token or `deny` gets 401 on every sync endpoint.
pub(super) async fn sync_auth_missing_or_denied_token_is_401(cx: &Ctx<'_>) {
    let s = "user:alice";
    for user in [None, Some("deny")] {
        let mut h = cx.http(user);
        let r = h
            .push(&push_body(&[put("a", s, "a", json!(1))]))
            .await
            .expect("push");
        assert_eq!(r.status, 401, "push as {user:?}: {}", r.text());
        let r = h.pull(s, 0, None).await.expect("pull");
        assert_eq!(r.status, 401, "pull as {user:?}");
        let r = h.pull_get(s, 0, None).await.expect("GET pull");
        assert_eq!(r.status, 401, "GET pull as {user:?}");
        let r = h.snapshot(s).await.expect("snapshot");
        assert_eq!(r.status, 401, "snapshot as {user:?}");
    }
    // Query and cookie tokens work on HTTP as on the upgrade.
    let mut conn = crate::http_client::HttpConn::new(&cx.server.http_base()).expect("base");
    let prefix = cx.profile.sync_prefix;
    let r = conn
        .request(
            Method::GET,
            &format!("{prefix}/pull?scope=user%3Aalice&cursor=0&token=alice"),
            &[],
            "",
        )
        .await
        .expect("pull with query token");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = conn
        .request(
            Method::POST,
            &format!("{prefix}/snapshot"),
            &[
                ("cookie", "token=alice"),
                ("content-type", "application/json"),
            ],
            json!({"scope": s}).to_string(),
        )
        .await
        .expect("snapshot with cookie token");
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Scopes other than `user:<me>` and `shared` (including the default scope) are
/// 403 `forbidden` on every endpoint; a batch with one forbidden mutation applies
/// nothing.
pub(super) async fn sync_scope_not_allowed_is_403(cx: &Ctx<'_>) {
    let mut alice = cx.http(Some("alice"));
    let mut bob = cx.http(Some("bob"));
    let r = alice
        .push(&push_body(&[put("f1", "user:bob", "k", json!(1))]))
        .await
        .expect("push");
    assert_eq!(r.status, 403, "push to another user's scope: {}", r.text());
    assert_error_body(&r.json(), "forbidden", "push to user:bob");
    let no_scope = json!({"id": "f2", "name": "put", "args": {"key": "k", "value": 1}});
    let r = alice.push(&push_body(&[no_scope])).await.expect("push");
    assert_eq!(r.status, 403, "push without scope (_default): {}", r.text());
    let r = alice.pull("user:bob", 0, None).await.expect("pull");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_error_body(&r.json(), "forbidden", "pull user:bob");
    let r = alice.pull_get("user:bob", 0, None).await.expect("GET pull");
    assert_eq!(r.status, 403);
    let r = alice.snapshot("user:bob").await.expect("snapshot");
    assert_eq!(r.status, 403);
    assert_error_body(&r.json(), "forbidden", "snapshot user:bob");
    let r = alice.snapshot_get("_default").await.expect("snapshot");
    assert_eq!(r.status, 403, "snapshot of the default scope");

    let mixed = push_body(&[
        put("ok1", "user:alice", "mine", json!(1)),
        put("bad1", "user:bob", "theirs", json!(2)),
    ]);
    let r = alice.push(&mixed).await.expect("push");
    assert_eq!(r.status, 403, "mixed batch: {}", r.text());
    let page = pull_ok(&mut alice, "user:alice", 0, None).await;
    assert_eq!(
        cursors(&page),
        Vec::<u64>::new(),
        "a forbidden batch applied part of itself"
    );
    let page = pull_ok(&mut bob, "user:bob", 0, None).await;
    assert_eq!(cursors(&page), Vec::<u64>::new());

    // `shared` is shared.
    push_ok(
        &mut alice,
        &push_body(&[put("sh1", "shared", "common", json!("hello"))]),
    )
    .await;
    let snap = snapshot_ok(&mut bob, "shared").await;
    assert_eq!(kv_lookup(&snap["data"], "common"), Some(&json!("hello")));
}

/// After a push commits, subscribers of `sync:<scope>` receive
/// `{"topic":"sync:<scope>","data":{"cursor":n}}`, and a pull then sees the change.
pub(super) async fn sync_poke_follows_push(cx: &Ctx<'_>) {
    let mut bob_ws = cx.ws("bob").await;
    let mut alice_ws = cx.ws("alice").await;
    bob_ws.subscribe("sync:shared").await;
    alice_ws.subscribe("sync:user:alice").await;
    assert!(
        bob_ws.barrier().await.is_empty(),
        "subscribe to sync:shared refused"
    );
    assert!(
        alice_ws.barrier().await.is_empty(),
        "subscribe to own sync scope refused"
    );

    let mut alice = cx.http(Some("alice"));
    let res = push_ok(
        &mut alice,
        &push_body(&[put("pk1", "shared", "poked", json!(1))]),
    )
    .await;
    let cursor = res[0]["cursor"].as_u64().expect("cursor");
    let (poke, _) = bob_ws.recv_topic("sync:shared").await;
    assert_eq!(
        poke,
        json!({"topic": "sync:shared", "data": {"cursor": cursor}})
    );
    let mut bob = cx.http(Some("bob"));
    let page = pull_ok(&mut bob, "shared", 0, None).await;
    assert!(
        cursors(&page).contains(&cursor),
        "poked cursor not pullable: {page}"
    );

    let res = push_ok(
        &mut alice,
        &push_body(&[put("pk2", "user:alice", "mine", json!(2))]),
    )
    .await;
    let (poke, _) = alice_ws.recv_topic("sync:user:alice").await;
    assert_eq!(poke["data"]["cursor"], res[0]["cursor"]);
    // Bob is not subscribed to alice's scope: nothing for him.
    let got = bob_ws.barrier().await;
    assert!(
        got.iter().all(|m| m["topic"] != "sync:user:alice"),
        "{got:?}"
    );
}

/// `sync:<scope>` can be subscribed only with access to the scope, and no client
/// may publish on any `sync:*` topic.
pub(super) async fn sync_topic_subscribe_needs_scope_and_publish_is_forbidden(cx: &Ctx<'_>) {
    let mut bob = cx.ws("bob").await;
    let mut alice = cx.ws("alice").await;
    alice.subscribe("sync:user:alice").await;
    alice.barrier().await;
    bob.subscribe("sync:user:alice").await;
    let m = bob.recv_message().await;
    assert_eq!(m["topic"], "error", "{m}");
    assert_eq!(m["data"]["code"], "forbidden", "{m}");
    bob.subscribe("sync:_default").await;
    let m = bob.recv_message().await;
    assert_eq!(
        m["data"]["code"], "forbidden",
        "subscribe to the default scope: {m}"
    );
    for topic in ["sync:user:alice", "sync:user:bob", "sync:shared"] {
        bob.publish(topic, json!({"cursor": 999})).await;
        let m = bob.recv_message().await;
        assert_eq!(m["topic"], "error", "publish on {topic}: {m}");
        assert_eq!(m["data"]["code"], "forbidden", "publish on {topic}: {m}");
    }
    alice
        .publish("sync:user:alice", json!({"cursor": 999}))
        .await;
    let m = alice.recv_message().await;
    assert_eq!(
        m["data"]["code"], "forbidden",
        "owner publishing a fake poke: {m}"
    );
    let got = alice.barrier().await;
    assert!(got.is_empty(), "a fake poke was delivered: {got:?}");
}

/// A permanent mutation error (here `put_many` without entries, which the profile
/// defines as one) is a result, not an HTTP error: it is recorded, advances the
/// client's sequence so later mutations apply, and is replayed unchanged.
pub(super) async fn sync_permanent_error_is_recorded_and_replayed(cx: &Ctx<'_>) {
    let s = "user:alice";
    let mut h = cx.http(Some("alice"));
    let bad = with_client(
        json!({"id": "bad-1", "scope": s, "name": crate::profile::PUT_MANY, "args": {}}),
        "client-e",
        1,
    );
    let good = with_client(put("good-2", s, "after-error", json!(2)), "client-e", 2);
    let r = h
        .push(&push_body(&[bad.clone(), good]))
        .await
        .expect("push");
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json()["results"].clone();
    assert_eq!(results[0]["ok"], false, "{results}");
    assert!(
        results[0]["error"].is_string(),
        "error result without message: {results}"
    );
    assert_eq!(
        results[1]["ok"], true,
        "the error must not block the sequence: {results}"
    );
    let again = h.push(&push_body(&[bad])).await.expect("push");
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json()["results"][0],
        results[0],
        "error not replayed as recorded"
    );
    let log = h.pull_all(s, 0).await.expect("pull all");
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(mentions(&log[0]["data"], "after-error"));
}
