//! live + sync inside an axum application, under `/live`, beside the
//! application's own routes; bearer tokens name the users and each user
//! syncs only their own scope.
//!
//! ```sh
//! cargo run -p live-sync --features axum --example axum_app
//! ```

use axum::extract::State;
use axum::routing::{get, post};
use live_sync::http::request::Parts;
use live_sync::{AuthRejection, Builder, Hooks, Routes, ServerHandle};

struct Auth;

impl Hooks for Auth {
    type User = String;

    async fn authenticate(&self, req: &Parts) -> Result<String, AuthRejection> {
        let header = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        header
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| AuthRejection::unauthorized("bearer token required"))
    }

    // Each user syncs their own scope, whatever the client claims.
    fn authorize_scope(&self, user: &String, _claimed: &str) -> Result<String, String> {
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
    let server = Builder::new().hooks(Auth).sqlite("app.db").start().await?;
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello\n" }))
        .route("/announce", post(announce))
        .with_state(server.handle().clone())
        .nest("/live", server.router_with(Routes::new().health())); // /live/ws, /live/_sync/*
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    server.shutdown().await;
    Ok(())
}
