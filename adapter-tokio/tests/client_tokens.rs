//! The Rust live client with a `get_token` callback against a server that
//! requires signed tokens: it connects with the first token, refreshes it
//! in-band before it expires (no reconnect), and the server takes the new
//! claims.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adapter_common::auth::{TokenHooks, TokenVerifier};
use adapter_common::{Server, ServerConfig};
use adapter_tokio::{TokioRuntime, serve};
use live_sync_client::{
    HttpTransport, LiveClient, LiveEvent, LiveOptions, SyncClient, SyncTransport,
};
use serde_json::json;
use testkit::tokens;
use tokio::net::TcpListener;

/// A server requiring tokens signed with the test secret, on a free port.
async fn start() -> (
    std::net::SocketAddr,
    adapter_common::ServerHandle<server_core::claims::Access>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServerConfig::default();
    config.token_refresh = true;
    let hooks = TokenHooks::required(TokenVerifier::hs256(tokens::SECRET.as_bytes()).unwrap());
    let server = Server::start(
        TokioRuntime::current(),
        config,
        hooks,
        sync_core::KvApp::new(),
        sync_core::MemoryStore::new(),
    )
    .await
    .unwrap();
    let handle = server.handle().clone();
    tokio::spawn(serve(listener, server, std::future::pending()));
    (addr, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refreshes_its_token_in_band_before_it_expires() {
    let (addr, handle) = start().await;

    // The first token lives 7 s, so its refresh is due about 2 s in; the
    // next ones live an hour and also allow topic "later".
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let options = LiveOptions::default().get_token(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let (ttl, topics): (i64, &[&str]) = if n == 0 {
                (7, &["now"])
            } else {
                (3600, &["now", "later"])
            };
            Some(tokens::good(&tokens::claims(
                "alice",
                ttl,
                &[],
                topics,
                topics,
            )))
        }
    });
    let (client, mut events) = LiveClient::connect(&format!("ws://{addr}/ws"), options).unwrap();
    client.wait_connected().await.unwrap();
    client.subscribe("now").await.unwrap();

    let refreshed = async {
        loop {
            let m = handle.metrics().await.unwrap();
            if m.guard.refreshes == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), refreshed)
        .await
        .expect("the client refreshed its token in-band");
    assert_eq!(asked.load(Ordering::SeqCst), 2);

    // The new claims are in force on the same connection: "later" is allowed.
    client.subscribe("later").await.unwrap();
    client.publish("later", json!("hi")).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(LiveEvent::Message(m))) if m.topic == "later" => {
                assert_eq!(m.data, json!("hi"));
                break;
            }
            Ok(Some(LiveEvent::Message(m))) if m.topic == "refresh" => {
                assert_eq!(m.data, json!({"ok": true}));
            }
            Ok(Some(LiveEvent::Connected | LiveEvent::Subscribed { .. })) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        handle.metrics().await.unwrap().live.sessions_opened,
        1,
        "no reconnect"
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_over_http_gets_a_fresh_token_after_a_401() {
    let (addr, _handle) = start().await;
    let fresh = || tokens::good(&tokens::claims("alice", 3600, &["user:{sub}"], &["*"], &[]));
    let live = LiveOptions::default().get_token(move || async move { Some(fresh()) });
    let (live, _events) = LiveClient::connect(&format!("ws://{addr}/ws"), live).unwrap();
    live.wait_connected().await.unwrap();
    // The first token handed to the HTTP transport is refused (a forged
    // signature, not expired): only the 401 makes the transport ask again.
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let http = HttpTransport::new(&format!("http://{addr}/_sync"), None)
        .unwrap()
        .get_token(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let claims = tokens::claims("alice", 3600, &["user:{sub}"], &[], &[]);
            let token = if n == 0 {
                tokens::forged(&claims)
            } else {
                tokens::good(&claims)
            };
            async move { Some(token) }
        });
    let config = sync_core::ReplicaConfig::new("user:alice", "alice-http");
    let (sync, _) = SyncClient::start_with(
        &live,
        sync_core::KvApp::new(),
        config,
        SyncTransport::Http(http),
    )
    .await
    .unwrap();
    sync.mutate("put", json!({"key": "k", "value": 1})).unwrap();
    let settled = tokio::time::timeout(Duration::from_secs(30), sync.wait_settled())
        .await
        .expect("the push went through with a fresh token");
    assert!(settled.is_ok(), "{settled:?}");
    assert!(
        asked.load(Ordering::SeqCst) >= 2,
        "a second token was asked for"
    );
}
