//! `--broker` on the smol binary: two smol nodes sharing Redis (then NATS)
//! deliver a publish made on one node to a subscriber on the other. The link
//! runs on its own one-thread tokio runtime beside the smol executor.
//!
//! Needs `TEST_REDIS_URL` / `TEST_NATS_URL` (`.ci/run` sets them); without
//! them the tests say so and check nothing, unless `TEST_SERVICES_REQUIRED=1`
//! makes that a failure.

use std::process::Stdio;
use std::time::Duration;

use http::Method;
use serde_json::json;
use testkit::http_client::HttpConn;
use testkit::tls_broker::TlsBroker;
use testkit::ws_client::{Incoming, WsClient};
use tokio::process::{Child, Command};

fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("TEST_SERVICES_REQUIRED").as_deref() != Ok("1"),
                "TEST_SERVICES_REQUIRED=1 but {var} is not set"
            );
            eprintln!("{var} not set: skipping a test that needs the service");
            None
        }
    }
}

/// A smol server node on a free port linked to `broker`, started with
/// `extra` flags, ready once `/healthz` answers (killed on drop).
async fn node_with(broker: &str, extra: &[&str]) -> (Child, String) {
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_adapter-smol"))
        .args([
            "--addr",
            &addr,
            "--memory",
            "--log-level",
            "warn",
            "--broker",
            broker,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the smol server");
    for _ in 0..600 {
        if let Ok(mut conn) = HttpConn::new(&format!("http://{addr}")) {
            if let Ok(r) = conn.request(Method::GET, "/healthz", &[], "").await {
                assert_eq!(r.status, 200);
                return (child, addr);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the smol server did not answer /healthz");
}

async fn fans_out_between_two_smol_nodes(broker: &str) {
    fans_out_between_two_smol_nodes_with(broker, &[]).await;
}

/// [`fans_out_between_two_smol_nodes`], the nodes started with `extra` flags.
async fn fans_out_between_two_smol_nodes_with(broker: &str, extra: &[&str]) {
    let (_a, a) = node_with(broker, extra).await;
    let (_b, b) = node_with(broker, extra).await;
    let mut subscriber = WsClient::connect_as(&format!("ws://{a}/ws"), "s").await;
    subscriber.subscribe("news").await;
    // Answered after the subscribe was handled: the subscription is in place.
    subscriber
        .send(&json!({"topic":"_sync","data":{"rid":1,"op":"pull","body":{"scope":"s"}}}))
        .await;
    subscriber.recv_topic("_sync").await;
    let mut publisher = WsClient::connect_as(&format!("ws://{b}/ws"), "p").await;
    // Node a subscribes to the broker channel in the background: publish on
    // node b until a message crosses.
    for attempt in 0..200 {
        publisher.publish("news", json!({"attempt": attempt})).await;
        if let Ok(Incoming::Message(m)) =
            tokio::time::timeout(Duration::from_millis(100), subscriber.recv()).await
        {
            assert_eq!(m["topic"], json!("news"), "{m}");
            assert!(m["data"]["attempt"].is_u64(), "{m}");
            return;
        }
    }
    panic!("no publish made on node b reached node a's subscriber through {broker}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smol_nodes_fan_out_through_redis() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    fans_out_between_two_smol_nodes(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smol_nodes_fan_out_through_nats() {
    let Some(url) = service_url("TEST_NATS_URL") else {
        return;
    };
    fans_out_between_two_smol_nodes(&url).await;
}

/// Two smol nodes fan out through `broker`, which speaks only TLS,
/// verified against its CA file.
async fn fans_out_between_two_smol_nodes_over_tls(broker: TlsBroker) {
    fans_out_between_two_smol_nodes_with(&broker.url(), &["--broker-ca-file", &broker.ca_file()])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smol_nodes_fan_out_through_redis_over_tls() {
    if let Some(broker) = TlsBroker::redis(false).await {
        fans_out_between_two_smol_nodes_over_tls(broker).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smol_nodes_fan_out_through_nats_over_tls() {
    if let Some(broker) = TlsBroker::nats(false).await {
        fans_out_between_two_smol_nodes_over_tls(broker).await;
    }
}

/// A client that read up to a position on one smol node resumes on the
/// other: the broker numbered and kept the publications.
async fn resumes_on_another_smol_node(broker: &str) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("h:smol-{}-{nanos:x}", std::process::id());
    let (_a, a) = node_with(broker, &["--history", "h:*=100"]).await;
    let (_b, b) = node_with(broker, &["--history", "h:*=100"]).await;
    let mut reader = WsClient::connect_as(&format!("ws://{a}/ws"), "r").await;
    reader
        .send(&json!({"topic":"subscribe","data":{"topic": topic, "history": true}}))
        .await;
    let (reply, _) = reader.recv_topic("subscribed").await;
    let epoch = reply["data"]["epoch"].as_str().unwrap().to_owned();
    let mut writer = WsClient::connect_as(&format!("ws://{a}/ws"), "w").await;
    for i in 1..=3 {
        writer.publish(&topic, json!(i)).await;
    }
    for i in 1..=3u64 {
        let (m, _) = reader.recv_topic(&topic).await;
        assert_eq!(m["offset"].as_u64(), Some(i), "{m}");
    }
    reader.close().await;
    for i in 4..=5 {
        writer.publish(&topic, json!(i)).await;
    }
    // Wait until the broker numbered both (a position reply says so).
    let mut probe = WsClient::connect_as(&format!("ws://{b}/ws"), "p").await;
    for _ in 0..200 {
        probe
            .send(&json!({"topic":"subscribe","data":{"topic": topic, "history": true}}))
            .await;
        let (r, _) = probe.recv_topic("subscribed").await;
        if r["data"]["offset"].as_u64() >= Some(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut back = WsClient::connect_as(&format!("ws://{b}/ws"), "r").await;
    back.send(&json!({"topic":"subscribe","data":{"topic": topic, "since": {"epoch": epoch, "offset": 3}}}))
        .await;
    let (reply, _) = back.recv_topic("subscribed").await;
    assert_eq!(reply["data"]["recovered"], true, "{reply}");
    for i in 4..=5u64 {
        let (m, _) = back.recv_topic(&topic).await;
        assert_eq!(
            (m["offset"].as_u64(), m["data"].as_u64()),
            (Some(i), Some(i)),
            "{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smol_client_resumes_on_another_node_through_redis() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    resumes_on_another_smol_node(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smol_client_resumes_on_another_node_through_nats() {
    let Some(url) = service_url("TEST_NATS_URL") else {
        return;
    };
    resumes_on_another_smol_node(&url).await;
}
