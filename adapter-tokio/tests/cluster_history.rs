//! History across nodes sharing a broker (Redis, then NATS): the broker
//! numbers publications, so a client that read up to a position on one node
//! resumes on another and gets what it missed once and in order; a resume
//! during a stream of publishes has no gap and no duplicate; a history
//! expired by its TTL is not recovered; a broker that cannot be reached
//! leaves publications on their node and answers `recovered:false`,
//! without bringing the node down.
//!
//! Needs `TEST_REDIS_URL` / `TEST_NATS_URL` (`.ci/run` sets them); without
//! them the tests say so and check nothing, unless `TEST_SERVICES_REQUIRED=1`
//! makes that a failure.

mod cluster;

use std::time::Duration;

use cluster::{Node, TcpProxy, service_url};
use serde_json::{Value, json};
use testkit::ws_client::WsClient;

/// A topic name no earlier run used (the broker keeps history between runs).
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}-{nanos:x}", std::process::id())
}

async fn nodes(broker: &str, history: &str, n: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(
            Node::start_with("", &["--memory", "--broker", broker, "--history", history]).await,
        );
    }
    nodes
}

async fn client(node: &Node, name: &str) -> WsClient {
    WsClient::connect_as(&format!("ws://{}/ws", node.addr), name).await
}

/// Subscribes with `extra` options and returns the `subscribed` reply's data.
async fn subscribe_with(ws: &mut WsClient, topic: &str, extra: Value) -> Value {
    let mut data = json!({"topic": topic});
    for (k, v) in extra.as_object().unwrap() {
        data[k] = v.clone();
    }
    ws.send(&json!({"topic": "subscribe", "data": data})).await;
    let (reply, skipped) = ws.recv_topic("subscribed").await;
    assert!(skipped.is_empty(), "nothing before the reply: {skipped:?}");
    assert_eq!(reply["data"]["topic"], topic);
    reply["data"].clone()
}

/// The position a history subscribe of `topic` is answered with. Asked
/// again on a client that is already subscribed, publications numbered since
/// the last ask may arrive before the reply: they are passed over.
async fn position(ws: &mut WsClient, topic: &str) -> u64 {
    ws.send(&json!({"topic": "subscribe", "data": {"topic": topic, "history": true}}))
        .await;
    let (reply, _) = ws.recv_topic("subscribed").await;
    reply["data"]["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("a position: {reply}"))
}

/// Reads `topic` publications until one with offset `last`; returns every
/// offset read, in order (the data of each is its own offset's `i`).
async fn offsets_until(ws: &mut WsClient, topic: &str, last: u64) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        let (m, _) = ws.recv_topic(topic).await;
        let offset = m["offset"]
            .as_u64()
            .unwrap_or_else(|| panic!("numbered: {m}"));
        assert_eq!(
            m["data"]["i"].as_u64(),
            Some(offset),
            "offset and data agree: {m}"
        );
        got.push(offset);
        if offset >= last {
            return got;
        }
    }
}

async fn publish_range(ws: &mut WsClient, topic: &str, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        ws.publish(topic, json!({"i": i})).await;
    }
}

async fn resumes_on_another_node(broker: &str) {
    let topic = unique("h:resume-");
    let [a, b] = <[Node; 2]>::try_from(nodes(broker, "h:*=100", 2).await)
        .ok()
        .unwrap();
    let mut reader = client(&a, "reader").await;
    let reply = subscribe_with(&mut reader, &topic, json!({"history": true})).await;
    let epoch = reply["epoch"].as_str().unwrap().to_owned();
    assert!(!epoch.is_empty(), "{reply}");
    assert_eq!(reply["offset"], 0);
    let mut writer_a = client(&a, "wa").await;
    publish_range(&mut writer_a, &topic, 1..=5).await;
    assert_eq!(
        offsets_until(&mut reader, &topic, 5).await,
        (1..=5).collect::<Vec<_>>()
    );
    reader.close().await;

    // Published while the reader is away, on the other node.
    let mut writer_b = client(&b, "wb").await;
    publish_range(&mut writer_b, &topic, 6..=8).await;
    // Publishing is asynchronous: wait until the broker numbered all three
    // (the position a subscribe is answered with says so).
    let mut probe = client(&b, "probe").await;
    for _ in 0..200 {
        if position(&mut probe, &topic).await >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut back = client(&b, "reader").await;
    let reply = subscribe_with(
        &mut back,
        &topic,
        json!({"since": {"epoch": epoch, "offset": 5}}),
    )
    .await;
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(reply["epoch"], epoch.as_str());
    assert_eq!(reply["offset"], 8);
    publish_range(&mut writer_a, &topic, 9..=9).await;
    assert_eq!(
        offsets_until(&mut back, &topic, 9).await,
        (6..=9).collect::<Vec<_>>()
    );
}

async fn resume_during_publishes_is_gap_free(broker: &str) {
    let topic = unique("h:stream-");
    let [a, b] = <[Node; 2]>::try_from(nodes(broker, "h:*=1000", 2).await)
        .ok()
        .unwrap();
    let mut first = client(&a, "first").await;
    let reply = subscribe_with(&mut first, &topic, json!({"history": true})).await;
    let epoch = reply["epoch"].as_str().unwrap().to_owned();
    let mut writer = client(&a, "w").await;
    publish_range(&mut writer, &topic, 1..=20).await;
    assert_eq!(
        offsets_until(&mut first, &topic, 20).await,
        (1..=20).collect::<Vec<_>>()
    );
    // Publishing goes on while the second client subscribes on node b.
    let total = 150;
    let topic2 = topic.clone();
    let publishing = tokio::spawn(async move {
        publish_range(&mut writer, &topic2, 21..=total).await;
        writer
    });
    let mut second = client(&b, "second").await;
    let reply = subscribe_with(
        &mut second,
        &topic,
        json!({"since": {"epoch": epoch, "offset": 20}}),
    )
    .await;
    assert_eq!(reply["recovered"], true, "{reply}");
    let got = offsets_until(&mut second, &topic, total).await;
    assert_eq!(
        got,
        (21..=total).collect::<Vec<_>>(),
        "every one once, in order"
    );
    assert_eq!(
        offsets_until(&mut first, &topic, total).await,
        (21..=total).collect::<Vec<_>>()
    );
    let _ = publishing.await;
}

async fn expired_history_is_not_recovered(broker: &str) {
    let topic = unique("t:ttl-");
    let [a, b] = <[Node; 2]>::try_from(nodes(broker, "t:*=10/1s", 2).await)
        .ok()
        .unwrap();
    let mut reader = client(&a, "reader").await;
    let reply = subscribe_with(&mut reader, &topic, json!({"history": true})).await;
    let epoch = reply["epoch"].as_str().unwrap().to_owned();
    let mut writer = client(&a, "w").await;
    publish_range(&mut writer, &topic, 1..=2).await;
    assert_eq!(offsets_until(&mut reader, &topic, 2).await, [1, 2]);
    reader.close().await;
    // Well past the TTL: the broker dropped the history.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut back = client(&b, "reader").await;
    let reply = subscribe_with(
        &mut back,
        &topic,
        json!({"since": {"epoch": epoch, "offset": 1}}),
    )
    .await;
    assert_eq!(reply["recovered"], false, "{reply}");
    // A client that had read everything missed nothing: recovered where the
    // broker keeps the position (Redis); a broker that lost it with the
    // entries (NATS: a new epoch) says so.
    let mut other = client(&b, "reader2").await;
    let reply = subscribe_with(
        &mut other,
        &topic,
        json!({"since": {"epoch": epoch, "offset": 2}}),
    )
    .await;
    if broker.starts_with("redis") {
        assert_eq!(reply["recovered"], true, "{reply}");
        assert_eq!(reply["epoch"], epoch.as_str());
    } else {
        assert_eq!(reply["recovered"], false, "{reply}");
        assert_ne!(reply["epoch"], epoch.as_str());
    }
    // What is published from now on still arrives.
    writer.publish(&topic, json!({"i": "after"})).await;
    let (m, _) = back.recv_topic(&topic).await;
    assert_eq!(m["data"]["i"], "after");
}

/// A broker nobody answers on: the node serves on, publications stay on
/// it, a resume is answered `recovered:false`.
async fn an_unreachable_broker_leaves_history_on_the_node(broker: &str) {
    let node = Node::start_with("", &["--memory", "--broker", broker, "--history", "h:*=10"]).await;
    let mut ws = client(&node, "c").await;
    let reply = subscribe_with(
        &mut ws,
        "h:down",
        json!({"since": {"epoch": "gone", "offset": 3}}),
    )
    .await;
    assert_eq!(reply["recovered"], false, "{reply}");
    ws.publish("h:down", json!({"i": 1})).await;
    let (m, _) = ws.recv_topic("h:down").await;
    assert_eq!(m["data"]["i"], 1);
    assert!(m.get("offset").is_none(), "not numbered: {m}");
    // Still serving, and the metrics say what stayed on the node.
    let mut other = client(&node, "d").await;
    other.subscribe("plain").await;
    let mut http = testkit::http_client::HttpConn::new(&format!("http://{}", node.addr)).unwrap();
    let r = http
        .request(http::Method::GET, "/metrics", &[], "")
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        body.lines().any(|l| l == "live_history_unnumbered_total 1"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_client_resumes_on_another_node() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    resumes_on_another_node(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_client_resumes_on_another_node() {
    let Some(url) = service_url("TEST_NATS_URL") else {
        return;
    };
    resumes_on_another_node(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_resume_during_publishes_is_gap_free() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    resume_during_publishes_is_gap_free(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_resume_during_publishes_is_gap_free() {
    let Some(url) = service_url("TEST_NATS_URL") else {
        return;
    };
    resume_during_publishes_is_gap_free(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_history_expired_by_its_ttl_is_not_recovered() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    expired_history_is_not_recovered(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_history_expired_by_its_ttl_is_not_recovered() {
    let Some(url) = service_url("TEST_NATS_URL") else {
        return;
    };
    expired_history_is_not_recovered(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_leaves_history_on_the_node() {
    an_unreachable_broker_leaves_history_on_the_node("redis://127.0.0.1:1").await;
}

/// Presence across two nodes: a watcher on one hears the joins and leaves
/// of sessions on the other, and a query lists both nodes' subscribers.
async fn presence_spans_two_nodes(broker: &str) {
    let topic = unique("room-");
    let [a, b] = <[Node; 2]>::try_from(nodes(broker, "h:*=10", 2).await)
        .ok()
        .unwrap();
    let mut alice = client(&a, "alice").await;
    alice
        .send(&json!({"topic":"subscribe","data":{"topic": topic, "presence": true}}))
        .await;
    alice
        .send(&json!({"topic":"presence","data":{"topic": topic}}))
        .await;
    let (list, _) = alice.recv_topic("presence").await;
    let clients = list["data"]["clients"].as_array().unwrap().clone();
    assert_eq!(clients.len(), 1, "alice alone: {list}");
    let alice_id = clients[0]["session"].as_str().unwrap().to_owned();

    // Bob joins on node b: alice hears it once node a follows the topic
    // (it does since her subscribe).
    let mut bob = client(&b, "bob").await;
    bob.subscribe(&topic).await;
    let (join, _) = alice.recv_topic("join").await;
    assert_eq!(join["data"]["topic"], topic.as_str());
    let bob_id = join["data"]["session"].as_str().unwrap().to_owned();
    assert_ne!(bob_id, alice_id);

    // Both nodes' subscribers, asked on either node.
    for (who, ws) in [("alice", &mut alice), ("bob", &mut bob)] {
        ws.send(&json!({"topic":"presence","data":{"topic": topic}}))
            .await;
        let (list, _) = ws.recv_topic("presence").await;
        let mut sessions: Vec<String> = list["data"]["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["session"].as_str().unwrap().to_owned())
            .collect();
        sessions.sort();
        let mut want = vec![alice_id.clone(), bob_id.clone()];
        want.sort();
        assert_eq!(sessions, want, "asked by {who}: {list}");
    }

    // Bob leaves: alice hears it and the list shrinks.
    bob.close().await;
    let (leave, _) = alice.recv_topic("leave").await;
    assert_eq!(leave["data"]["session"], bob_id.as_str());
    alice
        .send(&json!({"topic":"presence","data":{"topic": topic}}))
        .await;
    let (list, _) = alice.recv_topic("presence").await;
    assert_eq!(
        list["data"]["clients"].as_array().unwrap().len(),
        1,
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_presence_spans_two_nodes() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    presence_spans_two_nodes(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_presence_spans_two_nodes() {
    let Some(url) = service_url("TEST_NATS_URL") else {
        return;
    };
    presence_spans_two_nodes(&url).await;
}

/// Redis goes away in the middle of a stream and comes back: meanwhile the
/// node delivers publications on its own, without offsets, and logs it;
/// afterwards they are numbered again, going on from where the broker was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_mid_stream_keeps_the_node_serving() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    let target = url.trim_start_matches("redis://").trim_end_matches('/');
    let proxy = TcpProxy::start(target).await;
    let broker = format!("redis://{}", proxy.addr);
    let node = Node::start_with(
        "",
        &["--memory", "--broker", &broker, "--history", "h:*=100"],
    )
    .await;
    let topic = unique("h:outage-");
    let mut ws = client(&node, "c").await;
    subscribe_with(&mut ws, &topic, json!({"history": true})).await;
    let mut writer = client(&node, "w").await;
    publish_range(&mut writer, &topic, 1..=1).await;
    assert_eq!(offsets_until(&mut ws, &topic, 1).await, [1]);

    proxy.cut();
    writer.publish(&topic, json!({"i": "during"})).await;
    let (m, _) = ws.recv_topic(&topic).await;
    assert_eq!(m["data"]["i"], "during");
    assert!(
        m.get("offset").is_none(),
        "not numbered while Redis is away: {m}"
    );
    // The log says so (its lines are collected as they come).
    for _ in 0..100 {
        if node.logged("append failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(node.logged("append failed"), "the fallback is logged");

    proxy.restore();
    // Numbered again once the link is back, after offset 1.
    let mut numbered = None;
    for attempt in 0..200 {
        writer
            .publish(&topic, json!({"i": "after", "n": attempt}))
            .await;
        let (m, _) = ws.recv_topic(&topic).await;
        if let Some(o) = m["offset"].as_u64() {
            numbered = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(numbered.is_some_and(|o| o >= 2), "{numbered:?}");
}
