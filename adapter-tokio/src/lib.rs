//! tokio runtime adapter for `live-core` and `sync-core`.
//!
//! Owns: what is tokio-specific about serving live + sync, and nothing else:
//! the [`TokioRuntime`] implementation of `adapter_common::Runtime`, the
//! accept loop ([`serve`]) on a tokio `TcpListener` with hyper's HTTP/1
//! connections (upgrades enabled), SIGINT/SIGTERM handling
//! ([`shutdown_signal`]), and the server binary (`src/main.rs`). Every drive
//! loop (the server core's driver, store jobs, connections, HTTP routes) lives in
//! `adapter-common`, shared with the smol adapter. It must never hold
//! protocol logic that could live in a core.
//!
//! # Embedding
//!
//! ```no_run
//! use adapter_common::{OpenHooks, Server, ServerConfig};
//! use adapter_tokio::{TokioRuntime, serve, shutdown_signal};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = sync_core::MemoryStore::new();
//! let server = Server::start(
//!     TokioRuntime::current(),
//!     ServerConfig::default(),
//!     OpenHooks,
//!     sync_core::KvApp::new(),
//!     store,
//! )
//! .await?;
//! let handle = server.handle().clone(); // publish, send, close, trim ...
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, server, shutdown_signal()).await?;
//! # drop(handle);
//! # Ok(())
//! # }
//! ```
//!
//! Applications depend on the `live-sync` crate instead, whose builder
//! starts this adapter and whose `Server::router()` (feature `axum`) gives
//! an `axum::Router` of the routes to nest and merge. [`Router`] here is the
//! service beneath it (`server.service()`), a `tower::Service` and a hyper
//! `Service` answering every route.

mod runtime;
mod serve;
mod signal;

pub use runtime::TokioRuntime;
pub use serve::{serve, serve_tls};
pub use signal::shutdown_signal;

/// The server's routes as a `tower::Service` (and hyper `Service`) on tokio,
/// for mounting into axum or hyper applications.
pub type Router<H> = adapter_common::http::Service<TokioRuntime, H>;
