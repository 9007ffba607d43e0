//! An embedding application decides which topics keep history with
//! `Hooks::history`, before (and instead of) the `--history` rules.

use std::time::Duration;

use live_sync::http::request::Parts;
use live_sync::{AuthRejection, Builder, HistoryLimits, HistoryRule, Hooks};
use serde_json::json;
use testkit::ws_client::WsClient;

struct RoomsKeepHistory;

impl Hooks for RoomsKeepHistory {
    type User = ();
    async fn authenticate(&self, _req: &Parts) -> Result<(), AuthRejection> {
        Ok(())
    }
    fn history(&self, topic: &str) -> Option<HistoryLimits> {
        topic
            .starts_with("room:")
            .then(|| HistoryLimits::new(10, Some(Duration::from_secs(60))))
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

#[tokio::test]
async fn the_hook_gives_topics_a_history_and_the_rules_still_apply_to_the_rest() {
    let server = Builder::new()
        .hooks(RoomsKeepHistory)
        .memory()
        .configure(|c| {
            c.hub.history = vec![HistoryRule::new("feed", HistoryLimits::new(5, None))];
        })
        .start()
        .await
        .unwrap();
    let addr = serve(server.router()).await;
    let mut ws = WsClient::connect_as(&format!("ws://{addr}/ws"), "alice").await;
    for topic in ["room:1", "feed", "news"] {
        ws.send(&json!({"topic":"subscribe","data":{"topic":topic,"history":true}}))
            .await;
        let reply = ws.recv_topic("subscribed").await.0;
        assert_eq!(reply["data"]["topic"], topic);
        let epoch = reply["data"]["epoch"].as_str().unwrap().to_owned();
        assert_eq!(epoch.is_empty(), topic == "news", "{topic}: {reply}");
    }
    for topic in ["room:1", "feed", "news"] {
        ws.publish(topic, json!("hi")).await;
        let (m, _) = ws.recv_topic(topic).await;
        let want = if topic == "news" { None } else { Some(1) };
        assert_eq!(m["offset"].as_u64(), want, "{topic}: {m}");
    }
}
