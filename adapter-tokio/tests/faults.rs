//! Faults the WebSocket library catches before the hub sees them, and an
//! authentication hook that never answers.

use std::net::SocketAddr;
use std::time::Duration;

use adapter_common::{AuthRejection, Hooks, OpenHooks, Server, ServerConfig};
use adapter_tokio::{TokioRuntime, serve};
use futures_util::StreamExt;
use http::request::Parts;
use testkit::ws_client::{ConnectError, ConnectOptions, WsClient};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

async fn start<H: Hooks>(hooks: H, config: ServerConfig) -> SocketAddr {
    let server = Server::start(
        TokioRuntime::current(),
        config,
        hooks,
        sync_core::KvApp::new(),
        sync_core::MemoryStore::new(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, server, std::future::pending()));
    addr
}

/// Reads until a close frame; returns its code.
async fn close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Option<u16> {
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Close(frame) = message {
            return frame.map(|f| u16::from(f.code));
        }
    }
    None
}

#[tokio::test]
async fn text_that_is_not_utf8_closes_1007() {
    let addr = start(OpenHooks, ServerConfig::default()).await;
    let client = WsClient::connect_as(&format!("ws://{addr}/ws"), "anyone").await;
    let mut ws = client.into_stream();
    // A masked text frame (zero mask key) carrying the bytes FF FE.
    let frame = [0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe];
    ws.get_mut().write_all(&frame).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1007));
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_1002() {
    let addr = start(OpenHooks, ServerConfig::default()).await;
    let client = WsClient::connect_as(&format!("ws://{addr}/ws"), "anyone").await;
    let mut ws = client.into_stream();
    let frame = [0x81, 0x02, b'{', b'}'];
    ws.get_mut().write_all(&frame).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1002));
}

/// Authentication that never answers.
struct Hanging;

impl Hooks for Hanging {
    type User = ();

    async fn authenticate(&self, _request: &Parts) -> Result<(), AuthRejection> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn an_authentication_hook_that_hangs_is_refused_at_the_auth_deadline() {
    let mut config = ServerConfig::default();
    config.hub.timers.auth_timeout = Some(Duration::from_millis(100));
    let addr = start(Hanging, config).await;
    let refused = WsClient::connect(&format!("ws://{addr}/ws"), &ConnectOptions::default()).await;
    match refused {
        Err(ConnectError::Refused { status }) => assert_eq!(status, 401),
        other => panic!("expected a 401 refusal, got {:?}", other.err()),
    }
    let mut sync =
        testkit::sync_client::SyncHttp::new(&format!("http://{addr}"), "/_sync", None).unwrap();
    assert_eq!(sync.pull("s", 0, None).await.unwrap().status, 401);
}
