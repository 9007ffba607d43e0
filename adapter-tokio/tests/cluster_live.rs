//! live across three server processes sharing a broker (Redis, then NATS):
//! subscribers spread over the nodes receive every publish made on any node
//! exactly once, in each publisher's order; a node whose broker connection
//! drops resubscribes when it returns, logs the gap, and is served again.
//!
//! Needs `TEST_REDIS_URL` / `TEST_NATS_URL` (`.ci/run` sets them after
//! checking the services); without them the tests say so and check nothing,
//! unless `TEST_SERVICES_REQUIRED=1` makes that a failure.

mod cluster;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::{Node, TcpProxy, service_url};
use serde_json::{Value, json};
use testkit::tls_broker::TlsBroker;
use testkit::ws_client::{Incoming, WsClient};

async fn subscriber(node: &Node, topic: &str) -> WsClient {
    let mut ws = WsClient::connect_as(&format!("ws://{}/ws", node.addr), "s").await;
    ws.subscribe(topic).await;
    round_trip(&mut ws).await;
    ws
}

/// A `_sync` pull over the WebSocket and its answer: everything the session
/// sent before (a subscribe) has been handled when it arrives.
async fn round_trip(ws: &mut WsClient) {
    ws.send(&json!({"topic":"_sync","data":{"rid":1,"op":"pull","body":{"scope":"s"}}}))
        .await;
    let (reply, _) = ws.recv_topic("_sync").await;
    assert_eq!(reply["data"]["status"], json!(200), "{reply}");
}

/// Publishes probes from `publisher` until every subscriber got one: the
/// nodes' broker subscriptions are in place. Returns nothing left unread of
/// the probes (each subscriber reads up to its first probe; later probes are
/// skipped by the `probe` marker).
async fn wait_until_connected(publisher: &mut WsClient, subs: &mut [WsClient], topic: &str) {
    for s in subs.iter_mut() {
        let mut got = false;
        for attempt in 0..100 {
            publisher.publish(topic, json!({"probe": attempt})).await;
            if let Ok(Incoming::Message(_)) =
                tokio::time::timeout(Duration::from_millis(100), s.recv()).await
            {
                got = true;
                break;
            }
        }
        assert!(got, "a subscriber never heard the probes");
    }
}

/// Reads `topic` messages until `ends` end markers arrived; returns the
/// non-probe data in arrival order.
async fn read_until_ends(ws: &mut WsClient, topic: &str, ends: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let mut seen_ends = 0;
    while seen_ends < ends {
        let (m, _) = ws.recv_topic(topic).await;
        let data = m["data"].clone();
        if data.get("probe").is_some() {
            continue;
        }
        if data.get("end").is_some() {
            seen_ends += 1;
            continue;
        }
        got.push(data);
    }
    got
}

/// `broker` is the node's broker flags.
async fn fan_out_across_three_nodes(broker: &[&str]) {
    let args = [&["--memory"], broker].concat();
    let nodes = [
        Node::start_with("", &args).await,
        Node::start_with("", &args).await,
        Node::start_with("", &args).await,
    ];
    let topic = "room";
    let mut subs = Vec::new();
    for node in &nodes {
        subs.push(subscriber(node, topic).await);
        subs.push(subscriber(node, topic).await);
    }
    let mut publishers = Vec::new();
    for node in &nodes {
        publishers.push(WsClient::connect_as(&format!("ws://{}/ws", node.addr), "p").await);
    }
    for p in publishers.iter_mut() {
        wait_until_connected(p, &mut subs, topic).await;
    }
    let per = 30;
    for i in 0..per {
        for (n, p) in publishers.iter_mut().enumerate() {
            p.publish(topic, json!({"from": n, "i": i})).await;
        }
    }
    for p in publishers.iter_mut() {
        p.publish(topic, json!({"end": true})).await;
    }
    for s in subs.iter_mut() {
        let got = read_until_ends(s, topic, publishers.len()).await;
        let mut by_publisher: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for d in &got {
            by_publisher
                .entry(d["from"].as_u64().unwrap())
                .or_default()
                .push(d["i"].as_u64().unwrap());
        }
        assert_eq!(
            got.len(),
            3 * per as usize,
            "every publish once: {by_publisher:?}"
        );
        for (from, seq) in &by_publisher {
            assert_eq!(
                seq,
                &(0..per).collect::<Vec<u64>>(),
                "publisher {from} in order, once each"
            );
        }
    }
}

async fn resubscribes_after_the_broker_connection_returns(target: &str, scheme: &str) {
    let proxy = TcpProxy::start(target).await;
    let broker = format!("{scheme}://{}", proxy.addr);
    let direct = format!("{scheme}://{target}");
    let cut_off = Node::start_with("", &["--memory", "--broker", &broker]).await;
    let other = Node::start_with("", &["--memory", "--broker", &direct]).await;
    let mut subs = vec![subscriber(&cut_off, "news").await];
    let mut publisher = WsClient::connect_as(&format!("ws://{}/ws", other.addr), "p").await;
    wait_until_connected(&mut publisher, &mut subs, "news").await;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    // Served again once resubscribed.
    wait_until_connected(&mut publisher, &mut subs, "news").await;
    let back = cut_off
        .logs_within("connection back", Duration::from_secs(5))
        .await;
    assert!(cut_off.logged("connection lost"), "the drop is logged");
    assert!(back, "the gap is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fans_out_every_publish_once_across_three_nodes() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    fan_out_across_three_nodes(&["--broker", &url]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_fans_out_every_publish_once_across_three_nodes() {
    let Some(url) = service_url("TEST_NATS_URL") else {
        return;
    };
    fan_out_across_three_nodes(&["--broker", &url]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_link_resubscribes_after_a_drop() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    let target = url.trim_start_matches("redis://").trim_end_matches('/');
    resubscribes_after_the_broker_connection_returns(target, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_link_resubscribes_after_a_drop() {
    let Some(url) = service_url("TEST_NATS_URL") else {
        return;
    };
    let target = url.trim_start_matches("nats://").trim_end_matches('/');
    resubscribes_after_the_broker_connection_returns(target, "nats").await;
}

/// A broker that keeps its connections but stops answering (a partition)
/// is taken as lost within the link's timeout (Redis: a command unanswered
/// for 5 s, a connection attempt too; NATS: three pings unanswered, 3 s
/// apart), and the link connects again once it answers.
async fn reconnects_after_the_broker_stops_answering(url: &str, scheme: &str) {
    let target = url
        .trim_start_matches(&format!("{scheme}://"))
        .trim_end_matches('/');
    let proxy = TcpProxy::start(target).await;
    let via_proxy = format!("{scheme}://{}", proxy.addr);
    let silenced = Node::start_with("", &["--memory", "--broker", &via_proxy]).await;
    let other = Node::start_with("", &["--memory", "--broker", url]).await;
    let mut subs = vec![subscriber(&other, "news").await];
    let mut publisher = WsClient::connect_as(&format!("ws://{}/ws", silenced.addr), "p").await;
    wait_until_connected(&mut publisher, &mut subs, "news").await;

    assert_eq!(silenced.metric("live_broker_connected").await, "1");
    proxy.silence();
    publisher.publish("news", json!({"unanswered": true})).await;
    assert!(
        silenced
            .logs_within("connection lost", Duration::from_secs(30))
            .await,
        "a broker that stopped answering is taken as lost"
    );
    // Reported to the server just after the log line.
    let mut connected = String::new();
    for _ in 0..100 {
        connected = silenced.metric("live_broker_connected").await;
        if connected == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(connected, "0");
    if scheme == "nats" {
        // The NATS client bounds a reconnection's TCP connect by its timeout
        // but not the wait for the server's first words, so a try made while
        // the broker takes connections without answering waits for good:
        // the partition here also refuses new connections, as an unreachable
        // host does once the connect times out.
        proxy.cut();
    }
    proxy.restore();
    wait_until_connected(&mut publisher, &mut subs, "news").await;
    assert!(
        silenced
            .logs_within("connection back", Duration::from_secs(5))
            .await,
        "the gap is logged"
    );
    assert_eq!(silenced.metric("live_broker_connected").await, "1");
    assert_eq!(silenced.metric("live_broker_disconnects_total").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_link_reconnects_after_the_broker_stops_answering() {
    let Some(url) = service_url("TEST_REDIS_URL") else {
        return;
    };
    reconnects_after_the_broker_stops_answering(&url, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_link_reconnects_after_the_broker_stops_answering() {
    let Some(url) = service_url("TEST_NATS_URL") else {
        return;
    };
    reconnects_after_the_broker_stops_answering(&url, "nats").await;
}

/// Nodes reach a broker that speaks only TLS and verify it against the CA
/// file: with the TLS URL, and with the plain URL that the file turns to
/// TLS; every publish crosses once. A node whose authorities do not vouch
/// for the broker (another CA file, or the system's) never uses it and logs
/// why.
async fn fans_out_over_tls_and_refuses_an_unvouched_broker(broker: TlsBroker) {
    let (tls_url, plain_url) = (&broker.url(), &broker.plain_url());
    let ca = broker.ca_file();
    fan_out_across_three_nodes(&["--broker", tls_url, "--broker-ca-file", &ca]).await;
    let a = Node::start_with(
        "",
        &["--memory", "--broker", plain_url, "--broker-ca-file", &ca],
    )
    .await;
    let b = Node::start_with(
        "",
        &["--memory", "--broker", tls_url, "--broker-ca-file", &ca],
    )
    .await;
    let mut subs = vec![subscriber(&b, "news").await];
    let mut publisher = WsClient::connect_as(&format!("ws://{}/ws", a.addr), "p").await;
    wait_until_connected(&mut publisher, &mut subs, "news").await;

    let other = broker.other_ca_file();
    let wrong_ca = Node::start_with(
        "",
        &["--memory", "--broker", tls_url, "--broker-ca-file", &other],
    )
    .await;
    let system_cas = Node::start_with("", &["--memory", "--broker", tls_url]).await;
    for node in [&wrong_ca, &system_cas] {
        node.logs_within("unreachable", Duration::from_secs(10))
            .await;
        let log = node.log_text();
        assert!(
            log.contains("unreachable") && log.contains("invalid peer certificate"),
            "the refused certificate is logged: {log}"
        );
        // ... and shown to whoever watches the metrics.
        assert_eq!(node.metric("live_broker_connected").await, "0");
    }
    assert_eq!(a.metric("live_broker_connected").await, "1");
}

/// A broker that asks its clients for a certificate takes nodes that show
/// the one it vouches for, and turns away a node that shows none.
async fn shows_its_certificate_to_a_broker_that_asks(broker: TlsBroker) {
    let url = &broker.url();
    let ca = broker.ca_file();
    let (cert, key) = broker.client_cert();
    let flags = [
        "--memory",
        "--broker",
        url,
        "--broker-ca-file",
        &ca,
        "--broker-client-cert",
        &cert,
        "--broker-client-key",
        &key,
    ];
    let a = Node::start_with("", &flags).await;
    let b = Node::start_with("", &flags).await;
    let mut subs = vec![subscriber(&b, "news").await];
    let mut publisher = WsClient::connect_as(&format!("ws://{}/ws", a.addr), "p").await;
    wait_until_connected(&mut publisher, &mut subs, "news").await;

    let without = Node::start_with("", &flags[..5]).await;
    let turned_away = without
        .logs_within("unreachable", Duration::from_secs(10))
        .await;
    assert!(turned_away, "turned away: {}", without.log_text());
}

/// A node whose client certificate is renewed (its files replaced while it
/// runs) shows the new one at its next connection, without a restart.
async fn picks_up_a_renewed_client_certificate(broker: TlsBroker) {
    let url = &broker.url();
    let ca = broker.ca_file();
    let (cert, key) = broker.client_cert();
    let (stranger_cert, stranger_key) = broker.stranger_cert();
    let dir = tempfile::tempdir().unwrap();
    let node_cert = dir.path().join("node.pem").display().to_string();
    let node_key = dir.path().join("node.key").display().to_string();
    std::fs::copy(&stranger_cert, &node_cert).unwrap();
    std::fs::copy(&stranger_key, &node_key).unwrap();
    let flags = |cert: &str, key: &str| {
        [
            "--memory",
            "--broker",
            url,
            "--broker-ca-file",
            &ca,
            "--broker-client-cert",
            cert,
            "--broker-client-key",
            key,
        ]
        .map(str::to_owned)
    };
    let renewed = Node::start_with(
        "",
        &flags(&node_cert, &node_key).each_ref().map(String::as_str),
    )
    .await;
    let other = Node::start_with("", &flags(&cert, &key).each_ref().map(String::as_str)).await;
    assert!(
        renewed
            .logs_within("unreachable", Duration::from_secs(10))
            .await,
        "turned away at first"
    );
    assert_eq!(renewed.metric("live_broker_connected").await, "0");

    // Renewed in place, as a certificate manager would.
    std::fs::copy(&cert, &node_cert).unwrap();
    std::fs::copy(&key, &node_key).unwrap();
    let mut subs = vec![subscriber(&other, "news").await];
    let mut publisher = WsClient::connect_as(&format!("ws://{}/ws", renewed.addr), "p").await;
    wait_until_connected(&mut publisher, &mut subs, "news").await;
    assert_eq!(renewed.metric("live_broker_connected").await, "1");
}

/// The tests of `scenario` on a Redis and on a NATS broker of the test's
/// own that speaks only TLS (asking nodes for a certificate if `verify`).
macro_rules! on_both_tls_brokers {
    ($redis:ident, $nats:ident, $verify:expr, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $redis() {
            if let Some(broker) = TlsBroker::redis($verify).await {
                $scenario(broker).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $nats() {
            if let Some(broker) = TlsBroker::nats($verify).await {
                $scenario(broker).await;
            }
        }
    };
}

on_both_tls_brokers!(
    redis_over_tls_is_verified_against_the_ca_file,
    nats_over_tls_is_verified_against_the_ca_file,
    false,
    fans_out_over_tls_and_refuses_an_unvouched_broker
);

on_both_tls_brokers!(
    redis_takes_nodes_by_their_client_certificate,
    nats_takes_nodes_by_their_client_certificate,
    true,
    shows_its_certificate_to_a_broker_that_asks
);

on_both_tls_brokers!(
    redis_link_picks_up_a_renewed_client_certificate,
    nats_link_picks_up_a_renewed_client_certificate,
    true,
    picks_up_a_renewed_client_certificate
);
