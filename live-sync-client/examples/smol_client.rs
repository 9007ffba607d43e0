//! The same client from smol code, with no tokio runtime in the
//! application: the client's socket work runs on its own IO thread, and
//! everything awaited here is runtime-neutral.
//!
//! ```sh
//! cargo run -p adapter-smol -- --memory &           # or the tokio server
//! cargo run -p live-sync-client --example smol_client -- ws://127.0.0.1:8080/ws
//! ```

use live_sync_client::{KvApp, LiveClient, LiveEvent, LiveOptions, ReplicaConfig, SyncClient};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    smol::block_on(async {
        let (live, mut events) = LiveClient::connect(&url, LiveOptions::default().token("bob"))?;
        live.subscribe("room").await?;
        live.wait_connected().await?;

        live.publish("room", json!({"text": "hello from smol"}))
            .await?;
        while let Some(event) = events.recv().await {
            if let LiveEvent::Message(m) = event {
                println!("live: [{}] {}", m.topic, m.data);
                break;
            }
        }

        let config = ReplicaConfig::new("todos", "smol-example");
        let (todos, _sync_events) = SyncClient::start(&live, KvApp::new(), config).await?;
        todos.mutate("put", json!({"key": "t2", "value": {"title": "eggs"}}))?;
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
    })
}
