//! The Rust client used from smol code, against the server on smol: no tokio
//! runtime anywhere in the application. Live (subscribe, receive a server
//! publish, publish to another client) and sync (a mutation pushed, settled
//! and visible in the server's snapshot) both work.

use std::time::Duration;

use live_sync::client::{LiveClient, LiveEvent, LiveEvents, LiveOptions, SyncClient};
use live_sync::{Builder, KvApp};
use serde_json::json;
use sync_core::ReplicaConfig;

mod smol_support;
use smol_support::{Served, outside_tokio, until};

/// Waits for the next message on `topic`, skipping connection events; fails
/// after 30 s instead of hanging.
async fn next_message(events: &mut LiveEvents, topic: &str) -> serde_json::Value {
    until(
        events,
        &format!("a message on {topic}"),
        |event| match event {
            LiveEvent::Message(m) if m.topic == topic => Some(m.data.clone()),
            _ => None,
        },
    )
    .await
}

#[test]
fn the_client_works_from_smol_against_the_smol_server() {
    outside_tokio(|rt| async move {
        let served = Served::start(&rt, Builder::new()).await;
        let handle = served.handle.clone();
        let url = format!("ws://{}/ws", served.addr);

        let (alice, mut alice_events) = LiveClient::connect(&url, LiveOptions::default()).unwrap();
        let (bob, mut bob_events) = LiveClient::connect(&url, LiveOptions::default()).unwrap();
        alice.subscribe("news").await.unwrap();
        bob.subscribe("news").await.unwrap();
        alice.wait_connected().await.unwrap();
        bob.wait_connected().await.unwrap();
        // Connected means the subscribes were sent; publish from the server
        // until both sessions hold the subscription.
        let mut delivered = 0;
        for _ in 0..500 {
            delivered = handle
                .publish("news", r#""from the server""#)
                .await
                .unwrap();
            if delivered == 2 {
                break;
            }
            smol::Timer::after(Duration::from_millis(10)).await;
        }
        assert_eq!(delivered, 2, "both subscriptions reached the server");
        assert_eq!(
            next_message(&mut alice_events, "news").await,
            json!("from the server")
        );

        bob.publish("news", json!({"from": "bob"})).await.unwrap();
        loop {
            // Skip the server's repeated publishes that came before bob's.
            if next_message(&mut alice_events, "news").await == json!({"from": "bob"}) {
                break;
            }
        }
        drop(bob_events.recv());

        let config = ReplicaConfig::new("todos", "smol-laptop");
        let (todos, _sync_events) = SyncClient::start(&alice, KvApp::new(), config)
            .await
            .unwrap();
        todos
            .mutate("put", json!({"key": "t1", "value": {"title": "milk"}}))
            .unwrap();
        let status = todos.wait_settled().await.unwrap();
        assert_eq!((status.cursor, status.pending), (1, 0));
        assert_eq!(todos.state().get("t1"), Some(&json!({"title": "milk"})));

        todos.close().await;
        alice.close().await.unwrap();
        bob.close().await.unwrap();
        served.stop().await;
    });
}
