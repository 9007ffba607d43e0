//! The server reads tokio's clock: with time paused, its deadlines move with
//! tokio's time, so a test can jump over a minute of idleness at once.

use std::time::Duration;

use adapter_common::{OpenHooks, Server, ServerConfig};
use adapter_tokio::{TokioRuntime, serve};
use futures_util::StreamExt;
use sync_core::{KvApp, MemoryStore};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(start_paused = true)]
async fn an_idle_session_is_closed_after_the_idle_timeout_in_paused_time() {
    let mut config = ServerConfig::default();
    config.seed = Some(7);
    config.hub.timers.ping_interval = None;
    config.hub.timers.idle_timeout = Some(Duration::from_secs(600));
    let server = Server::start(
        TokioRuntime::current(),
        config,
        OpenHooks,
        KvApp::new(),
        MemoryStore::new(),
    )
    .await
    .expect("server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let accept = tokio::spawn(serve(listener, server, std::future::pending()));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let started = tokio::time::Instant::now();
    let closed = loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed, Some(4000), "closed as idle");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(600),
        "closed after {waited:?} of tokio time, before the idle timeout"
    );
    accept.abort();
}
