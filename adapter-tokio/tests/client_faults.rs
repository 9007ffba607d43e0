//! The live client against scripted misbehaving servers: garbage frames,
//! close codes, a peer that stops answering, and sync replies that make no
//! sense. The client must report, survive and keep serving.

mod common;

use std::future::Future;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use live_sync_client::{DisconnectReason, LiveClient, LiveEvent, SyncClient};
use serde_json::{Value, json};
use sync_core::{KvApp, ReplicaConfig, ReplicaEvent};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

type Server = WebSocketStream<TcpStream>;

/// Serves one WebSocket connection with `script`; returns the URL.
async fn scripted<F, Fut>(script: F) -> String
where
    F: FnOnce(Server) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        script(ws).await;
        // Keep the listener (refusing nothing, accepting nothing) until the
        // test ends, so reconnects do not hit a closed port by surprise.
        std::future::pending::<()>().await;
    });
    url
}

/// The next text frame's JSON.
async fn next_json(ws: &mut Server) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Ws::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("server lost the client: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_are_ignored_and_later_messages_delivered() {
    let url = scripted(|mut ws| async move {
        for junk in [
            Ws::text("not json"),
            Ws::text("[1,2]"),
            Ws::text(r#"{"data":1}"#),
            Ws::text(r#"{"topic":7}"#),
            Ws::binary(vec![0xff, 0xfe]),
            Ws::text(r#"{"topic":"_sync","data":{"rid":[99,1],"status":200}}"#),
            Ws::text(r#"{"topic":"error","data":"no fields"}"#),
            Ws::binary(br#"{"topic":"room","data":"binary ok"}"#.to_vec()),
            Ws::text(r#"{"topic":"room","data":{"n":1}}"#),
        ] {
            ws.send(junk).await.unwrap();
        }
    })
    .await;
    let (_live, events) = LiveClient::connect(&url, options("x")).unwrap();
    let mut rec = Recorder::new(events);
    // An error frame without fields is still reported, with empty strings.
    let err = rec
        .until("error frame", |ev| match ev {
            LiveEvent::ServerError { code, message } => Some((code.clone(), message.clone())),
            _ => None,
        })
        .await;
    assert_eq!(err, (String::new(), String::new()));
    assert_eq!(rec.message_on("room").await, json!("binary ok"));
    assert_eq!(rec.message_on("room").await, json!({"n": 1}));
    // The unclaimed `_sync` reply is handed over as an ordinary message.
    assert!(rec.messages().iter().any(|(t, _)| t == "_sync"));
    assert!(
        !rec.seen
            .iter()
            .any(|e| matches!(e, LiveEvent::Disconnected { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_close_code_is_reported() {
    let url = scripted(|mut ws| async move {
        let frame = CloseFrame {
            code: 4008.into(),
            reason: "slow consumer".into(),
        };
        ws.send(Ws::Close(Some(frame))).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    let (_live, events) = LiveClient::connect(&url, options("x")).unwrap();
    let mut rec = Recorder::new(events);
    let reason = rec
        .until("disconnected", |ev| match ev {
            LiveEvent::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        reason,
        DisconnectReason::ClosedByServer {
            code: 4008,
            reason: "slow consumer".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_detected_by_pings() {
    // The server completes the handshake, then never reads again: no pong.
    let url = scripted(|ws| async move {
        std::future::pending::<()>().await;
        drop(ws);
    })
    .await;
    let mut opts = options("x");
    opts.ping_interval = Some(Duration::from_millis(20));
    let (_live, events) = LiveClient::connect(&url, opts).unwrap();
    let mut rec = Recorder::new(events);
    let reason = rec
        .until("disconnected", |ev| match ev {
            LiveEvent::Disconnected { reason } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(reason, DisconnectReason::PingTimeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_sync_replies_are_retried_until_a_good_one() {
    // Answers the first two `_sync` requests with garbage, then serves an
    // empty scope correctly (cursor 0, nothing to pull).
    let url = scripted(|mut ws| async move {
        let mut answered = 0;
        loop {
            let req = next_json(&mut ws).await;
            if req["topic"] != "_sync" {
                continue;
            }
            let rid = req["data"]["rid"].clone();
            let reply = match answered {
                0 => json!({"rid": rid, "status": "200", "body": []}),
                1 => json!({"rid": rid, "status": 200, "body": {"changes": "no"}}),
                _ => json!({"rid": rid, "status": 200,
                            "body": {"changes": [], "has_more": false, "next_cursor": 0}}),
            };
            answered += 1;
            let frame = json!({"topic": "_sync", "data": reply}).to_string();
            ws.send(Ws::text(frame)).await.unwrap();
        }
    })
    .await;
    let (live, _events) = LiveClient::connect(&url, options("x")).unwrap();
    let mut config = ReplicaConfig::new("shared", "c");
    config.backoff_base = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(50);
    let (sync, mut events) = SyncClient::start(&live, KvApp::new(), config)
        .await
        .unwrap();
    let mut failures = 0;
    while failures < 2 {
        match guard("failure events", events.recv())
            .await
            .expect("events")
        {
            ReplicaEvent::RequestFailed { .. } => failures += 1,
            _ => continue,
        }
    }
    let st = guard("settles", sync.wait_settled()).await.unwrap();
    assert_eq!((st.cursor, st.pending), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_every_connection_at_once_keeps_the_backoff_growing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                let _ = ws.close(None).await;
            }
        }
    });
    let (live, events) = LiveClient::connect(&url, options("x")).unwrap();
    let mut rec = Recorder::new(events);
    let mut attempts = Vec::new();
    while attempts.len() < 4 {
        let attempt = rec
            .until("reconnecting", |ev| match ev {
                LiveEvent::Reconnecting { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .await;
        attempts.push(attempt);
    }
    // Each connection succeeded, but none stayed up: no reset to attempt 1.
    assert_eq!(attempts, vec![1, 2, 3, 4]);
    let connects = rec
        .seen
        .iter()
        .filter(|e| matches!(e, LiveEvent::Connected))
        .count();
    assert!(connects >= 3, "{:?}", rec.seen);
    live.close().await.unwrap();
}
