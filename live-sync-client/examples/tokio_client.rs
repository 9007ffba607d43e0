//! The client on tokio: live (subscribe, publish, receive) and sync (a
//! mutation pushed and settled) against a running server, then exit.
//!
//! ```sh
//! cargo run -p adapter-tokio -- --memory &          # or the smol server
//! cargo run -p live-sync-client --example tokio_client -- ws://127.0.0.1:8080/ws
//! ```

use live_sync_client::{KvApp, LiveClient, LiveEvent, LiveOptions, ReplicaConfig, SyncClient};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let (live, mut events) = LiveClient::connect(&url, LiveOptions::default().token("alice"))?;
    live.subscribe("room").await?;
    live.wait_connected().await?; // subscriptions are sent before this returns

    live.publish("room", json!({"text": "hello from tokio"}))
        .await?;
    while let Some(event) = events.recv().await {
        if let LiveEvent::Message(m) = event {
            println!("live: [{}] {}", m.topic, m.data);
            break;
        }
    }

    let config = ReplicaConfig::new("todos", "tokio-example");
    let (todos, _sync_events) = SyncClient::start(&live, KvApp::new(), config).await?;
    todos.mutate("put", json!({"key": "t1", "value": {"title": "milk"}}))?;
    let status = todos.wait_settled().await?;
    println!(
        "sync: cursor {} pending {} state {:?}",
        status.cursor,
        status.pending,
        todos.state()
    );

    todos.close().await;
    live.close().await?;
    Ok(())
}
