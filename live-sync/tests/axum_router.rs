//! The server's routes as an `axum::Router`: nested under a prefix and merged
//! beside the application's routes, claiming nothing but the WebSocket and
//! sync endpoints unless health and metrics are asked for.

use axum::routing::get;
use http::Method;
use live_sync::{Builder, Routes};
use serde_json::json;
use testkit::http_client::HttpConn;
use testkit::sync_client::{SyncHttp, push_body, put};
use testkit::ws_client::WsClient;

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

async fn status(http: &mut HttpConn, path: &str) -> u16 {
    http.request(Method::GET, path, &[], "")
        .await
        .unwrap()
        .status
        .as_u16()
}

#[tokio::test]
async fn nested_under_a_prefix_the_routes_work_and_claim_nothing_else() {
    let server = Builder::new().start().await.unwrap();
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .nest("/live", server.router());
    let addr = serve(app).await;
    let mut http = HttpConn::new(&format!("http://{addr}")).unwrap();
    assert_eq!(status(&mut http, "/hello").await, 200);
    for unclaimed in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/live/healthz",
        "/live/readyz",
        "/live/metrics",
        "/ws",
        "/_sync/pull",
    ] {
        assert_eq!(status(&mut http, unclaimed).await, 404, "{unclaimed}");
    }

    let mut ws = WsClient::connect_as(&format!("ws://{addr}/live/ws"), "alice").await;
    ws.subscribe("news").await;
    ws.send(&json!({"topic":"_sync","data":{"rid":1,"op":"snapshot","body":{}}}))
        .await;
    ws.recv_topic("_sync").await;
    assert_eq!(server.handle().publish("news", r#""hi""#).await.unwrap(), 1);
    assert_eq!(ws.recv_topic("news").await.0["data"], json!("hi"));

    let mut sync = SyncHttp::new(&format!("http://{addr}"), "/live/_sync", None).unwrap();
    let r = sync
        .push(&push_body(&[put("m1", "notes", "k", json!(1))]))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = sync.pull("notes", 0, None).await.unwrap();
    assert_eq!(r.json()["next_cursor"], json!(1), "{}", r.text());
    ws.close().await;
}

#[tokio::test]
async fn merged_with_health_and_metrics_opted_in() {
    let server = Builder::new().start().await.unwrap();
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .merge(server.router_with(Routes::new().health().metrics()));
    let addr = serve(app).await;
    let mut http = HttpConn::new(&format!("http://{addr}")).unwrap();
    assert_eq!(status(&mut http, "/hello").await, 200);
    assert_eq!(status(&mut http, "/healthz").await, 200);
    assert_eq!(
        status(&mut http, "/readyz").await,
        200,
        "a memory store is always there"
    );
    let metrics = http
        .request(Method::GET, "/metrics", &[], "")
        .await
        .unwrap();
    assert_eq!(metrics.status.as_u16(), 200);
    assert!(metrics.text().contains("live_"), "{}", metrics.text());
    // Only the health route was asked for, not the bundled demo or files.
    assert_eq!(status(&mut http, "/").await, 404);
    let mut sync = SyncHttp::new(&format!("http://{addr}"), "/_sync", None).unwrap();
    assert_eq!(sync.pull("notes", 0, None).await.unwrap().status, 200);
}
