//! Mounting live + sync into an existing axum application.
//!
//! ```sh
//! cargo run -p adapter-tokio --example embed_axum
//! ```
//!
//! The application keeps its own routes (`/hello`, `/announce`); every other
//! path goes to the live + sync router (`/ws`, `/_sync/*`, `/healthz`,
//! `/metrics`). Authentication reads a bearer token; each user may sync only
//! their own scope `user:<name>`. The `/announce` route publishes to every
//! WebSocket subscribed to `news` through the server handle.

use adapter_common::{AuthRejection, Hooks, Server, ServerConfig, ServerHandle};
use adapter_tokio::{Router, TokioRuntime, shutdown_signal};
use axum::extract::State;
use axum::routing::{get, post};
use http::request::Parts;

/// Bearer-token users; scope `user:<name>` for each.
struct TokenHooks;

impl Hooks for TokenHooks {
    type User = String;

    async fn authenticate(&self, request: &Parts) -> Result<String, AuthRejection> {
        request
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| AuthRejection::unauthorized("bearer token required"))
    }

    fn authorize_scope(&self, user: &String, scope: &str) -> Result<String, String> {
        // The scope is derived from the user, whatever the client claimed.
        let _ = scope;
        Ok(format!("user:{user}"))
    }
}

async fn announce(State(live): State<ServerHandle<String>>, body: String) -> String {
    let data = serde_json::Value::String(body).to_string();
    match live.publish("news", data).await {
        Ok(n) => format!("delivered to {n} sessions\n"),
        Err(e) => format!("not published: {e}\n"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(
        TokioRuntime::current(),
        ServerConfig::default(),
        TokenHooks,
        sync_core::KvApp::new(),
        sync_core::MemoryStore::new(),
    )
    .await?;
    let live: Router<TokenHooks> = server.service();
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello from the application\n" }))
        .route("/announce", post(announce))
        .with_state(server.handle().clone())
        .fallback_service(live);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    server.shutdown().await;
    Ok(())
}
