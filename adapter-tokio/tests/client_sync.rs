//! The sync client against the tokio server (conformance profile):
//! convergence through pokes, the offline queue surviving a server restart on
//! its SQLite file, 410 -> snapshot reset, server and local rejections.

mod common;

use std::collections::BTreeMap;

use common::*;
use live_sync_client::{
    ClientError, HttpTransport, LiveClient, LiveEvent, SyncClient, SyncEvents, SyncTransport,
};
use serde_json::{Value, json};
use sync_core::{KvApp, KvState, ReplicaConfig, ReplicaEvent};
use testkit::conformance::ServerUnderTest;

async fn replica(live: &LiveClient, scope: &str, id: &str) -> (SyncClient<KvApp>, SyncEvents) {
    replica_with(live, KvApp::new(), scope, id).await
}

async fn replica_with(
    live: &LiveClient,
    app: KvApp,
    scope: &str,
    id: &str,
) -> (SyncClient<KvApp>, SyncEvents) {
    let mut config = ReplicaConfig::new(scope, id);
    config.seed = 3;
    config.pull_limit = 2; // several pages per catch-up
    config.backoff_base = std::time::Duration::from_millis(20);
    config.backoff_max = std::time::Duration::from_millis(200);
    // No fallback poll within any test: news must come from pokes.
    config.poll_interval = std::time::Duration::from_secs(3600);
    guard("start sync", SyncClient::start(live, app, config))
        .await
        .expect("start sync")
}

fn kv(pairs: &[(&str, Value)]) -> KvState {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect::<BTreeMap<_, _>>()
}

fn put(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_converge_through_pokes() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (alice, mut a_events) = connect(&url, "alice").await;
    let (bob, _b_events) = connect(&url, "bob").await;
    let (a, _) = replica(&alice, "shared", "alice-1").await;
    let (b, _) = replica(&bob, "shared", "bob-1").await;

    assert_eq!(a.mutate("put", put("x", json!(1))).unwrap(), 1);
    assert_eq!(a.mutate("put", put("z", json!(3))).unwrap(), 2);
    assert_eq!(b.mutate("put", put("y", json!(2))).unwrap(), 1);
    // Visible at once, before any server round trip (alice's changes may
    // already have reached bob too: the server can be that fast).
    assert_eq!(b.state().get("y"), Some(&json!(2)));

    let want = kv(&[("x", json!(1)), ("y", json!(2)), ("z", json!(3))]);
    for c in [&a, &b] {
        guard("converge", c.wait_until(|s| *s == want))
            .await
            .unwrap();
    }
    for c in [&a, &b] {
        let st = guard("settle", c.wait_settled()).await.unwrap();
        assert_eq!((st.cursor, st.pending), (3, 0));
        assert_eq!(c.state(), want);
    }
    // Sync frames (replies, pokes) never reach the application's events.
    a_events.barrier(&alice).await;
    assert!(
        a_events.messages().iter().all(|(t, _)| t == "echo"),
        "{:?}",
        a_events.messages()
    );

    // Closing gives the poke topic back: Bob's next commit pokes nobody on
    // Alice's connection (an unclaimed poke would show up as a message).
    a.close().await;
    a_events.barrier(&alice).await;
    b.mutate("put", put("w", json!(4))).unwrap();
    assert_eq!(guard("settle", b.wait_settled()).await.unwrap().cursor, 4);
    a_events.barrier(&alice).await;
    assert!(
        a_events.messages().iter().all(|(t, _)| t == "echo"),
        "{:?}",
        a_events.messages()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queue_is_pushed_once_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let server = ServerThread::start("127.0.0.1:0", Some(db.clone()));
    let addr = server.addr;
    let url = server.ws_url();
    let (phone_live, _phone_events) = connect(&url, "alice").await;
    let (phone, _) = replica(&phone_live, "user:alice", "phone").await;
    phone.mutate("put", put("k0", json!(0))).unwrap();
    let st = guard("first push", phone.wait_settled()).await.unwrap();
    assert_eq!(st.cursor, 1);

    server.stop().await;
    let mut watch = phone.watch();
    guard("sees the disconnect", watch.wait_for(|s| !s.connected))
        .await
        .unwrap();
    for n in 1..=3 {
        assert_eq!(
            phone
                .mutate("put", put(&format!("k{n}"), json!(n)))
                .unwrap(),
            n + 1
        );
    }
    let want = kv(&[
        ("k0", json!(0)),
        ("k1", json!(1)),
        ("k2", json!(2)),
        ("k3", json!(3)),
    ]);
    assert_eq!(phone.state(), want, "optimistic state while offline");
    assert_eq!(phone.status().pending, 3);

    let server = ServerThread::start(&addr.to_string(), Some(db));
    let st = guard("flushed after reconnect", phone.wait_settled())
        .await
        .unwrap();
    // Four mutations, four changes: nothing lost, nothing applied twice.
    assert_eq!((st.cursor, st.pending, st.last_seq), (4, 0, 4));
    assert_eq!(phone.state(), want);

    // A fresh device of the same user catches up from the server alone.
    let (laptop_live, _laptop_events) = connect(&server.ws_url(), "alice").await;
    let (laptop, _) = replica(&laptop_live, "user:alice", "laptop").await;
    guard("laptop converges", laptop.wait_until(|s| *s == want))
        .await
        .unwrap();
    assert_eq!(
        guard("laptop settles", laptop.wait_settled())
            .await
            .unwrap()
            .cursor,
        4
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_too_old_resets_from_a_snapshot_and_keeps_pending_mutations() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (writer_live, _w) = connect(&url, "alice").await;
    let (writer, _) = replica(&writer_live, "shared", "writer").await;
    for n in 1..=5 {
        writer
            .mutate("put", put(&format!("w{n}"), json!(n)))
            .unwrap();
    }
    assert_eq!(
        guard("writer", writer.wait_settled()).await.unwrap().cursor,
        5
    );
    server.trim("shared", 5).await.unwrap();

    // A new replica at cursor 0 is behind the trimmed log: 410, then snapshot.
    let (reader_live, _r) = connect(&url, "bob").await;
    let (reader, mut events) = replica(&reader_live, "shared", "reader").await;
    reader.mutate("put", put("r", json!("mine"))).unwrap();
    let cursor = guard("reset", async {
        loop {
            match events.recv().await.expect("events") {
                ReplicaEvent::Reset { cursor } => return cursor,
                _ => continue,
            }
        }
    })
    .await;
    assert!(cursor >= 5, "snapshot cursor {cursor}");
    let mut want = writer.state();
    want.insert("r".into(), json!("mine"));
    guard("reader converges", reader.wait_until(|s| *s == want))
        .await
        .unwrap();
    let st = guard("reader settles", reader.wait_settled())
        .await
        .unwrap();
    assert_eq!((st.cursor, st.pending, st.resets), (6, 0, 1));
    guard("writer sees r", writer.wait_until(|s| *s == want))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_the_server_refuses_is_rolled_back_and_later_ones_apply() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (live, _e) = connect(&url, "alice").await;
    // "shout" exists locally only: the server rejects it for good.
    let app = KvApp::new().with("shout", |_, m| {
        let key = KvApp::key_arg(m)?;
        Ok(vec![KvApp::put_change(key, json!("LOUD"))])
    });
    let (c, mut events) = replica_with(&live, app, "user:alice", "dev").await;
    assert_eq!(c.mutate("shout", json!({"key": "s"})).unwrap(), 1);
    assert_eq!(c.state(), kv(&[("s", json!("LOUD"))]));
    assert_eq!(c.mutate("put", put("p", json!(1))).unwrap(), 2);
    let rejected = guard("rejection", async {
        loop {
            if let ReplicaEvent::Rejected { mutation, result } =
                events.recv().await.expect("events")
            {
                return (mutation.name, result.code);
            }
        }
    })
    .await;
    // The server's key-value app knows no such mutator: a permanent error.
    assert_eq!(
        rejected,
        ("shout".to_owned(), Some("invalid_mutation".to_owned()))
    );
    let st = guard("settle", c.wait_settled()).await.unwrap();
    assert_eq!((st.cursor, st.pending, st.rejected), (1, 0, 1));
    assert_eq!(c.state(), kv(&[("p", json!(1))]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_refused_locally_is_an_error_and_queues_nothing() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let (live, mut e) = connect(&url, "alice").await;
    let (c, _) = replica(&live, "user:alice", "dev").await;
    assert!(matches!(
        c.mutate("put", json!({"value": 1})),
        Err(ClientError::Mutation(_))
    ));
    assert!(matches!(
        c.mutate("no_such_mutator", json!({})),
        Err(ClientError::Mutation(_))
    ));
    assert_eq!(c.mutate("put", put("k", json!(1))).unwrap(), 1);
    let st = guard("settle", c.wait_settled()).await.unwrap();
    assert_eq!((st.cursor, st.last_seq), (1, 1));
    e.barrier(&live).await;
    assert!(
        !e.seen
            .iter()
            .any(|ev| matches!(ev, LiveEvent::ServerError { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_keeps_going_when_the_live_events_are_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut server = ServerThread::start("127.0.0.1:0", Some(db.clone()));
    let addr = server.addr.to_string();
    let mut opts = options("alice");
    opts.event_buffer = 1;
    // Held, never read: the one slot fills with the first event.
    let (live, _unread) = LiveClient::connect(&server.ws_url(), opts).unwrap();
    let (c, _) = replica(&live, "user:alice", "dev").await;
    for n in 1..=3u64 {
        c.mutate("put", put(&format!("k{n}"), json!(n))).unwrap();
        let st = guard("settles", c.wait_settled()).await.unwrap();
        assert_eq!(st.cursor, n);
        // Each restart makes several state events nobody reads.
        server.stop().await;
        let mut watch = c.watch();
        guard("disconnect seen", watch.wait_for(|s| !s.connected))
            .await
            .unwrap();
        server = ServerThread::start(&addr, Some(db.clone()));
        guard("reconnect seen", watch.wait_for(|s| s.connected))
            .await
            .unwrap();
    }
    assert_eq!(c.state().len(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_transport_converges_with_a_websocket_client_and_resets_on_410() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let base = format!("http://{}/_sync", server.addr());
    let (alice, _a) = connect(&url, "alice").await;
    let (bob, _b) = connect(&url, "bob").await;
    let http = HttpTransport::new(&base, Some("alice")).unwrap();
    let mut config = ReplicaConfig::new("shared", "alice-http");
    config.pull_limit = 2;
    config.poll_interval = std::time::Duration::from_secs(3600);
    let (a, _) = SyncClient::start_with(&alice, KvApp::new(), config, SyncTransport::Http(http))
        .await
        .unwrap();
    let (b, _) = replica(&bob, "shared", "bob-ws").await;
    for n in 1..=3 {
        a.mutate("put", put(&format!("a{n}"), json!(n))).unwrap();
    }
    b.mutate("put", put("b", json!("b"))).unwrap();
    let want = kv(&[
        ("a1", json!(1)),
        ("a2", json!(2)),
        ("a3", json!(3)),
        ("b", json!("b")),
    ]);
    for c in [&a, &b] {
        guard("converge", c.wait_until(|s| *s == want))
            .await
            .unwrap();
        let st = guard("settle", c.wait_settled()).await.unwrap();
        assert_eq!((st.cursor, st.pending), (4, 0));
    }

    server.trim("shared", 4).await.unwrap();
    let http = HttpTransport::new(&base, Some("bob")).unwrap();
    let (late, _) = SyncClient::start_with(
        &bob,
        KvApp::new(),
        ReplicaConfig::new("shared", "bob-late"),
        SyncTransport::Http(http),
    )
    .await
    .unwrap();
    guard("late converges", late.wait_until(|s| *s == want))
        .await
        .unwrap();
    let st = guard("late settles", late.wait_settled()).await.unwrap();
    assert_eq!((st.cursor, st.resets), (4, 1));

    // A token without rights to the scope is a failed request, retried:
    // nothing is lost meanwhile.
    let denied = HttpTransport::new(&base, Some("mallory")).unwrap();
    let (m, mut events) = SyncClient::start_with(
        &bob,
        KvApp::new(),
        ReplicaConfig::new("user:bob", "mallory"),
        SyncTransport::Http(denied),
    )
    .await
    .unwrap();
    m.mutate("put", put("evil", json!(1))).unwrap();
    let status = guard("refused", async {
        loop {
            if let ReplicaEvent::RequestFailed { status, .. } = events.recv().await.unwrap() {
                return status;
            }
        }
    })
    .await;
    assert_eq!(status, Some(403));
    assert_eq!(m.status().pending, 1);
    assert!(HttpTransport::new("ws://x/_sync", None).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pokes_the_slow_poll_still_brings_changes() {
    let server = start_server().await;
    let url = format!("ws://{}/ws", server.addr());
    let base = format!("http://{}/_sync", server.addr());
    let (bob, _b) = connect(&url, "bob").await;
    let (writer, _) = replica(&bob, "shared", "writer").await;

    // A live connection to nowhere: this replica never hears a poke.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (nowhere, _events) =
        LiveClient::connect(&format!("ws://127.0.0.1:{port}/ws"), options("alice")).unwrap();
    let mut config = ReplicaConfig::new("shared", "poller");
    config.poll_interval = std::time::Duration::from_millis(50);
    let http = HttpTransport::new(&base, Some("alice")).unwrap();
    let (poller, _) =
        SyncClient::start_with(&nowhere, KvApp::new(), config, SyncTransport::Http(http))
            .await
            .unwrap();
    guard("first pull", poller.wait_settled()).await.unwrap();

    writer.mutate("put", put("news", json!(1))).unwrap();
    guard("writer", writer.wait_settled()).await.unwrap();
    guard(
        "poller polls",
        poller.wait_until(|s| s.contains_key("news")),
    )
    .await
    .unwrap();
    assert!(!poller.status().connected);
}
