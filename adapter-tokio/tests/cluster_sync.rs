//! Sync across several server processes sharing one PostgreSQL database:
//! concurrent pushes from clients on different nodes keep the log dense and
//! apply every mutation once, pokes reach subscribers on every node only
//! after that node can serve the change, a SIGKILLed node's clients converge
//! on another node, and pushes wait for a lost database (up to
//! `--db-outage-wait-ms`) and are answered when it returns, or 503 once the
//! wait is over.
//!
//! Needs `TEST_POSTGRES_URL` (`.ci/run` sets it after checking PostgreSQL);
//! without it the tests say so and check nothing, unless
//! `TEST_SERVICES_REQUIRED=1` makes that a failure.

mod cluster;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster::{Node, PgSchema, TcpProxy, postgres_url};
use serde_json::{Value, json};
use testkit::sync_client::{SyncHttp, push_body, put, with_client};
use testkit::ws_client::WsClient;

/// Pushes one sequenced mutation until it is acknowledged (a 503 or 500 is
/// retried with the same sequence, as a client would). Returns the result.
async fn push_until_ok(sync: &mut SyncHttp, client: &str, seq: u64, scope: &str) -> Value {
    push_counting(sync, client, seq, scope).await.0
}

/// [`push_until_ok`], also counting the answers that were not 200.
async fn push_counting(sync: &mut SyncHttp, client: &str, seq: u64, scope: &str) -> (Value, u32) {
    let mut refused = 0;
    let m = with_client(
        put(
            &format!("{client}:{seq}"),
            scope,
            &format!("{client}-{seq}"),
            json!(seq),
        ),
        client,
        seq,
    );
    for _ in 0..200 {
        match sync.push(&push_body(std::slice::from_ref(&m))).await {
            Ok(r) if r.status == 200 => {
                let result = r.json()["results"][0].clone();
                assert_eq!(result["ok"], json!(true), "{result}");
                return (result, refused);
            }
            Ok(r) => {
                refused += 1;
                assert!(
                    r.status == 503 || r.status == 500,
                    "unexpected {}: {}",
                    r.status,
                    r.text()
                );
            }
            Err(_) => refused += 1,
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{client}:{seq} never acknowledged");
}

/// Every change of `scope` on the node at `addr`, checked dense from 1.
async fn dense_log(addr: &str, scope: &str) -> Vec<Value> {
    let mut sync = SyncHttp::new(&format!("http://{addr}"), "/_sync", None).unwrap();
    let changes = sync.pull_all(scope, 0).await.expect("pull");
    let cursors: Vec<u64> = changes
        .iter()
        .map(|c| c["cursor"].as_u64().unwrap())
        .collect();
    assert_eq!(
        cursors,
        (1..=changes.len() as u64).collect::<Vec<_>>(),
        "cursors dense from 1 with no duplicate"
    );
    changes
}

async fn snapshot_cursor(addr: &str, scope: &str) -> u64 {
    let mut sync = SyncHttp::new(&format!("http://{addr}"), "/_sync", None).unwrap();
    let r = sync.snapshot(scope).await.unwrap();
    r.json()["cursor"].as_u64().unwrap_or(0)
}

/// A `_sync` pull over the WebSocket and its answer: everything the session
/// sent before (a subscribe) has been handled when it arrives.
async fn round_trip(ws: &mut WsClient) {
    ws.send(&json!({"topic":"_sync","data":{"rid":1,"op":"pull","body":{"scope":"s"}}}))
        .await;
    let (reply, _) = ws.recv_topic("_sync").await;
    assert_eq!(reply["data"]["status"], json!(200), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_three_nodes_pushing_one_scope_stay_dense_exactly_once_and_converge() {
    let Some(url) = postgres_url() else { return };
    let schema = PgSchema::fresh(&url, "three").await;
    let nodes = [
        Node::start(&schema.url()).await,
        Node::start(&schema.url()).await,
        Node::start(&schema.url()).await,
    ];
    // A subscriber on node 2 hears pokes of pushes made on node 0.
    let mut watcher = WsClient::connect_as(&format!("ws://{}/ws", nodes[2].addr), "w").await;
    watcher.subscribe("sync:shared").await;
    round_trip(&mut watcher).await;

    let per_client = 12u64;
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for c in 0..2 {
            let addr = node.addr.clone();
            let client = format!("n{i}c{c}");
            tasks.push(tokio::spawn(async move {
                let mut sync = SyncHttp::new(&format!("http://{addr}"), "/_sync", None).unwrap();
                let (mut results, mut refused) = (Vec::new(), 0);
                for seq in 1..=per_client {
                    let (result, n) = push_counting(&mut sync, &client, seq, "shared").await;
                    results.push(result);
                    refused += n;
                }
                (client, results, refused)
            }));
        }
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        let (client, results, refused) = t.await.unwrap();
        // Nodes writing one scope wait for each other in PostgreSQL; none
        // turns a push away because another wrote first.
        assert_eq!(refused, 0, "{client}'s pushes were refused {refused} times");
        acknowledged.push((client, results));
    }
    let total = 6 * per_client;

    // A poke seen on node 2 means node 2 serves what it announces.
    let (poke, _) = watcher.recv_topic("sync:shared").await;
    let poked = poke["data"]["cursor"].as_u64().unwrap();
    assert!(snapshot_cursor(&nodes[2].addr, "shared").await >= poked);

    // Every node converges on the same dense log with each mutation once.
    for node in &nodes {
        let mut cursor = 0;
        for _ in 0..200 {
            cursor = snapshot_cursor(&node.addr, "shared").await;
            if cursor == total {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(cursor, total, "node {} converged", node.addr);
        let log = dense_log(&node.addr, "shared").await;
        let keys: BTreeSet<String> = log
            .iter()
            .map(|c| c["data"]["key"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(keys.len() as u64, total, "every mutation applied once");
    }
    // Acknowledged cursors are distinct and each names its own change.
    let log = dense_log(&nodes[0].addr, "shared").await;
    let mut seen = BTreeSet::new();
    for (client, results) in &acknowledged {
        for (i, r) in results.iter().enumerate() {
            let cursor = r["cursor"].as_u64().unwrap();
            assert!(seen.insert(cursor), "cursor {cursor} acknowledged twice");
            let key = format!("{client}-{}", i + 1);
            assert_eq!(log[cursor as usize - 1]["data"]["key"], json!(key));
        }
    }
    // A retry on another node replays the original answer.
    let mut other = SyncHttp::new(&format!("http://{}", nodes[1].addr), "/_sync", None).unwrap();
    let replay = push_until_ok(&mut other, "n0c0", 3, "shared").await;
    assert_eq!(replay, acknowledged[0].1[2]);
    assert_eq!(snapshot_cursor(&nodes[1].addr, "shared").await, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_node_move_to_another_and_nothing_acknowledged_is_lost() {
    let Some(url) = postgres_url() else { return };
    let schema = PgSchema::fresh(&url, "kill").await;
    let mut doomed = Node::start(&schema.url()).await;
    let survivor = Node::start(&schema.url()).await;

    let mut acked: Vec<(u64, Value)> = Vec::new();
    let mut sync = SyncHttp::new(&format!("http://{}", doomed.addr), "/_sync", None).unwrap();
    for seq in 1..=10 {
        acked.push((seq, push_until_ok(&mut sync, "mover", seq, "docs").await));
    }
    // Seq 11 is in flight when the node dies: its outcome is unknown.
    let m = with_client(put("mover:11", "docs", "mover-11", json!(11)), "mover", 11);
    let body = push_body(&[m]);
    let in_flight = tokio::spawn(async move { sync.push(&body).await.map(|r| r.status) });
    doomed.kill().await;
    let _ = in_flight.await;

    let mut moved = SyncHttp::new(&format!("http://{}", survivor.addr), "/_sync", None).unwrap();
    for seq in 11..=15 {
        acked.push((seq, push_until_ok(&mut moved, "mover", seq, "docs").await));
    }
    // Retries of acknowledged pushes replay their answers.
    for (seq, result) in &acked[..10] {
        assert_eq!(
            &push_until_ok(&mut moved, "mover", *seq, "docs").await,
            result
        );
    }
    let log = dense_log(&survivor.addr, "docs").await;
    assert_eq!(
        log.len(),
        15,
        "seq 11 applied once, whether or not it landed before the kill"
    );
    let keys: BTreeSet<&str> = log
        .iter()
        .map(|c| c["data"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 15);

    // The killed node restarts from PostgreSQL.
    let again = Node::start(&schema.url()).await;
    assert_eq!(snapshot_cursor(&again.addr, "docs").await, 15);
}

/// A node on a fresh schema reached through a proxy that can take the
/// database away from it alone, started with `args` (how long it waits for
/// a lost database).
async fn behind_a_proxy(tag: &str, args: &[&str]) -> Option<(PgSchema, TcpProxy, Node)> {
    let url = postgres_url()?;
    let schema = PgSchema::fresh(&url, tag).await;
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let db = schema.url_via(&proxy.addr);
    let node = Node::start_with(&db, args).await;
    Some((schema, proxy, node))
}

/// Pushes client `c`'s second mutation, which must be answered 503
/// `unavailable` (not hang); returns the answer's text.
async fn push_unavailable(sync: &mut SyncHttp) -> String {
    let m = with_client(put("c:2", "docs", "c-2", json!(2)), "c", 2);
    let r = sync
        .push(&push_body(&[m]))
        .await
        .expect("an answer, not a hang");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], json!("unavailable"), "{}", r.text());
    r.text().to_owned()
}

/// With no wait for the database (`--db-outage-wait-ms 0`), a push whose
/// batch meets a lost database is tried once more and then answered 503,
/// and the node is not ready (`/readyz`) until it hears the database again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_fails_pushes_with_503_and_they_recover_when_it_returns() {
    let Some((_schema, proxy, node)) =
        behind_a_proxy("outage", &["--db-outage-wait-ms", "0"]).await
    else {
        return;
    };
    let mut sync = SyncHttp::new(&format!("http://{}", node.addr), "/_sync", None).unwrap();
    push_until_ok(&mut sync, "c", 1, "docs").await;

    proxy.cut();
    push_unavailable(&mut sync).await;
    assert_eq!(node.get("/readyz").await.0, 503);

    // Back: the node hears the database again (its listening connection
    // reconnects) and reads what changed, which makes it ready again
    // before any push.
    proxy.restore();
    let mut ready = false;
    for _ in 0..200 {
        if node.get("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again without a push");
    assert_eq!(node.metric("sync_store_unreachable").await, "0");
    let result = push_until_ok(&mut sync, "c", 2, "docs").await;
    assert_eq!(result["cursor"], json!(2));
    assert_eq!(dense_log(&node.addr, "docs").await.len(), 2);
}

/// A push whose batch meets a lost database waits for it (up to
/// `--db-outage-wait-ms`, here a minute) and is answered once it is back,
/// applied once; the node says it is trying again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_wait_for_a_database_that_comes_back() {
    let Some((_schema, proxy, node)) =
        behind_a_proxy("outage_wait", &["--db-outage-wait-ms", "60000"]).await
    else {
        return;
    };
    let base = format!("http://{}", node.addr);
    let mut sync = SyncHttp::new(&base, "/_sync", None).unwrap();
    push_until_ok(&mut sync, "c", 1, "docs").await;

    proxy.cut();
    let waiting = tokio::spawn(async move {
        let mut sync = SyncHttp::new(&base, "/_sync", None).unwrap();
        let m = with_client(put("c:2", "docs", "c-2", json!(2)), "c", 2);
        sync.push(&push_body(&[m])).await.expect("an answer")
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the push waits for the database");
    assert_eq!(node.metric("sync_store_unreachable").await, "1");
    assert_eq!(node.get("/readyz").await.0, 503, "not ready to write");
    proxy.restore();
    let r = waiting.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["cursor"], json!(2), "{}", r.text());
    assert_eq!(dense_log(&node.addr, "docs").await.len(), 2);
    assert!(node.logged("trying its 1 pushes again"));
    assert_eq!(node.metric("sync_store_unreachable").await, "0");
    assert_eq!(node.get("/readyz").await, (200, "ready\n".to_owned()));
}

/// A database that neither answers nor refuses (a network partition) is
/// not waited for forever: each try fails at `--db-timeout-ms`, and past
/// `--db-outage-wait-ms` the push is answered 503. Once the database
/// answers again, so does the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_does_not_answer_fails_pushes_after_the_timeout() {
    let args = ["--db-outage-wait-ms", "300", "--db-timeout-ms", "2000"];
    let Some((_schema, proxy, node)) = behind_a_proxy("partition", &args).await else {
        return;
    };
    let mut sync = SyncHttp::new(&format!("http://{}", node.addr), "/_sync", None).unwrap();
    push_until_ok(&mut sync, "c", 1, "docs").await;

    proxy.silence();
    let answer = push_unavailable(&mut sync).await;
    // The batch's try timed out; or the listening connection's check found
    // the silence first (it is behind the same proxy), so the push waited
    // for a read of what other nodes wrote, which timed out the same way.
    assert!(
        answer.contains("did not answer") || answer.contains("could not be read"),
        "{answer}"
    );

    proxy.restore();
    let result = push_until_ok(&mut sync, "c", 2, "docs").await;
    assert_eq!(result["cursor"], json!(2));
    assert_eq!(dense_log(&node.addr, "docs").await.len(), 2);
}

/// A node whose connections to the database went silent (a partition that
/// healed, but whose connections a firewall forgot) hears other nodes'
/// commits again: its listening connection is checked every
/// `--db-timeout-ms` and replaced when it does not answer, so subscribers
/// on it are poked about a push on another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_notices_went_silent_listens_again() {
    let Some(url) = postgres_url() else { return };
    let schema = PgSchema::fresh(&url, "silent").await;
    let a = Node::start(&schema.url()).await;
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let name = format!("silent-b-{}", std::process::id());
    let b_db = format!("{}&application_name={name}", schema.url_via(&proxy.addr));
    let b = Node::start_with(&b_db, &["--db-timeout-ms", "1000"]).await;
    listening(&url, &name).await;
    let mut watcher = WsClient::connect_as(&format!("ws://{}/ws", b.addr), "w").await;
    watcher.subscribe("sync:docs").await;
    round_trip(&mut watcher).await;
    let mut sync = SyncHttp::new(&format!("http://{}", a.addr), "/_sync", None).unwrap();
    push_until_ok(&mut sync, "c", 1, "docs").await;
    let (poke, _) = watcher.recv_topic("sync:docs").await;
    assert_eq!(poke["data"]["cursor"], json!(1), "{poke}");

    // Every connection B has goes silent for good; new ones get through.
    proxy.silence();
    proxy.restore();
    push_until_ok(&mut sync, "c", 2, "docs").await;
    let (poke, _) = watcher.recv_topic("sync:docs").await;
    assert_eq!(poke["data"]["cursor"], json!(2), "{poke}");
    assert!(b.logged("change notices interrupted"));
    assert_eq!(snapshot_cursor(&b.addr, "docs").await, 2);
}

/// Waits until the node named `application_name` listens for change
/// notices (its listener connects on its own, after the node answers).
async fn listening(url: &str, application_name: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let sql = "SELECT count(*) FROM pg_stat_activity \
               WHERE application_name = $1 AND query LIKE 'LISTEN%'";
    for _ in 0..200 {
        let row = client.query_one(sql, &[&application_name]).await.unwrap();
        if row.get::<_, i64>(0) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{application_name} never listened");
}
