//! The router mounted into an axum application: the application's own route,
//! the WebSocket upgrade and the sync endpoints all work through axum, and the
//! server handle publishes to WebSocket subscribers.

use adapter_common::{AuthRejection, Hooks, Server, ServerConfig};
use adapter_tokio::{Router, TokioRuntime};
use axum::routing::get;
use http::Method;
use http::request::Parts;
use serde_json::json;
use testkit::http_client::HttpConn;
use testkit::sync_client::{SyncHttp, push_body, put};
use testkit::ws_client::WsClient;

struct BearerHooks;

impl Hooks for BearerHooks {
    type User = String;

    async fn authenticate(&self, request: &Parts) -> Result<String, AuthRejection> {
        testkit::profile::authenticate(&request.headers, request.uri.query())
            .map_err(|_| AuthRejection::unauthorized("token required"))
    }
}

#[tokio::test]
async fn mounted_in_axum_the_routes_and_the_handle_work() {
    let server = Server::start(
        TokioRuntime::current(),
        ServerConfig::default(),
        BearerHooks,
        sync_core::KvApp::new(),
        sync_core::MemoryStore::new(),
    )
    .await
    .unwrap();
    let live: Router<BearerHooks> = server.service();
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .fallback_service(live);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut http = HttpConn::new(&format!("http://{addr}")).unwrap();
    let hello = http.request(Method::GET, "/hello", &[], "").await.unwrap();
    assert_eq!(hello.text(), "hello");

    let mut ws = WsClient::connect_as(&format!("ws://{addr}/ws"), "alice").await;
    ws.subscribe("news").await;
    // Frames of one session are handled in order: once a `_sync` request sent
    // after the subscribe is answered, the subscription is in place.
    ws.send(&json!({"topic":"_sync","data":{"rid":1,"op":"snapshot","body":{}}}))
        .await;
    ws.recv_topic("_sync").await;
    let handle = server.handle().clone();
    let delivered = handle.publish("news", r#""extra""#).await.unwrap();
    assert_eq!(delivered, 1);
    let (msg, _) = ws.recv_topic("news").await;
    assert_eq!(msg["data"], json!("extra"));

    let mut sync = SyncHttp::new(&format!("http://{addr}"), "/_sync", Some("alice")).unwrap();
    let r = sync
        .push(&push_body(&[put("m1", "notes", "k", json!(1))]))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["cursor"], json!(1));
    let mut anonymous = SyncHttp::new(&format!("http://{addr}"), "/_sync", None).unwrap();
    let r = anonymous.pull("notes", 0, None).await.unwrap();
    assert_eq!(r.status, 401);

    ws.close().await;
    serving.abort();
}
