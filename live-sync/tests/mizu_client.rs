//! go-mizu's own browser sync client against this server, request for
//! request: it sends each mutation as
//! `{"id","name","scope","client","seq","args","created_at"}` (`client`, not
//! `client_id`), pushes `{"mutations":[...]}`, pulls with
//! `POST {"scope","cursor","limit"}`, reads snapshots, and after a reconnect
//! pushes its whole pending queue again. Each replay must return the original
//! results and write nothing twice.

use serde_json::{Value, json};
use testkit::sync_client::SyncHttp;

/// One server on a free loopback port; stops when the returned sender drops.
async fn server() -> (String, tokio::sync::oneshot::Sender<()>) {
    let server = live_sync::Builder::new().start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve_on(listener, async move {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop)
}

/// A mutation exactly as mizu's client writes it.
fn mizu_mutation(id: &str, client: &str, seq: u64, key: &str, value: Value) -> Value {
    json!({
        "id": id,
        "name": "put",
        "scope": "todos",
        "client": client,
        "seq": seq,
        "args": {"key": key, "value": value},
        "created_at": "2026-12-03T22:00:00.000Z",
    })
}

async fn push(sync: &mut SyncHttp, queue: &[Value]) -> Vec<Value> {
    let r = sync.push(&json!({ "mutations": queue })).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"].as_array().unwrap().clone()
}

async fn pull(sync: &mut SyncHttp, cursor: u64, limit: u64) -> Value {
    let body = json!({"scope": "todos", "cursor": cursor, "limit": limit});
    let r = sync
        .call(http::Method::POST, "/pull", body.to_string())
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn mizu_browser_client_pushes_pulls_and_replays_its_queue() {
    let (base, _stop) = server().await;
    let mut sync = SyncHttp::new(&base, "/_sync", None).unwrap();

    // Two mutations queued offline, pushed together.
    let mut queue = vec![
        mizu_mutation("m1", "tab-1", 1, "a", json!({"title": "milk"})),
        mizu_mutation("m2", "tab-1", 2, "b", json!({"title": "eggs"})),
    ];
    let first = push(&mut sync, &queue).await;
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["ok"], json!(true), "{first:?}");
    assert_eq!(first[0]["cursor"], json!(1));
    assert_eq!(first[1]["cursor"], json!(2));

    // The connection dropped before the answer arrived: the same queue again,
    // then again with one more mutation behind it. Originals come back, and
    // only the new mutation is applied.
    let replay = push(&mut sync, &queue).await;
    assert_eq!(replay, first, "a replay answers with the original results");
    queue.push(mizu_mutation(
        "m3",
        "tab-1",
        3,
        "a",
        json!({"title": "oat milk"}),
    ));
    let grown = push(&mut sync, &queue).await;
    assert_eq!(&grown[..2], &first[..], "replayed head keeps its results");
    assert_eq!(grown[2]["ok"], json!(true), "{grown:?}");
    assert_eq!(grown[2]["cursor"], json!(3));

    // created_at as a number (Date.now()) is ignored just the same.
    let mut other = mizu_mutation("n1", "tab-2", 1, "c", json!(true));
    other["created_at"] = json!(1_796_335_200_000u64);
    let r = push(&mut sync, &[other]).await;
    assert_eq!(r[0]["cursor"], json!(4), "{r:?}");

    // Pull pages as mizu asks for them: every change once, in cursor order.
    let page = pull(&mut sync, 0, 2).await;
    assert_eq!(page["has_more"], json!(true), "{page}");
    assert_eq!(page["next_cursor"], json!(2));
    let rest = pull(&mut sync, 2, 100).await;
    assert_eq!(rest["has_more"], json!(false), "{rest}");
    assert_eq!(rest["next_cursor"], json!(4));
    let cursors: Vec<u64> = [&page, &rest]
        .iter()
        .flat_map(|p| p["changes"].as_array().unwrap().iter())
        .map(|c| c["cursor"].as_u64().unwrap())
        .collect();
    assert_eq!(cursors, [1, 2, 3, 4]);
    for c in rest["changes"].as_array().unwrap() {
        assert_eq!(c["scope"], json!("todos"));
    }

    // A snapshot holds each key's last value at the head cursor.
    let r = sync
        .call(
            http::Method::POST,
            "/snapshot",
            json!({"scope": "todos"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let snap = r.json();
    assert_eq!(snap["cursor"], json!(4), "{snap}");
    let data = snap["data"].to_string();
    assert!(data.contains("oat milk") && data.contains("eggs"), "{snap}");
    assert!(
        !data.contains("\"milk\""),
        "the replaced value is gone: {snap}"
    );

    // A replay after all of that still writes nothing.
    let again = push(&mut sync, &queue).await;
    assert_eq!(again, grown);
    assert_eq!(pull(&mut sync, 4, 100).await["changes"], json!([]));
}
