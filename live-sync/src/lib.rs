//! live + sync for Rust applications, in one dependency: real-time topic
//! pub/sub over WebSocket (**live**) and authoritative offline-first state
//! sync (**sync**), with the wire formats of go-mizu's `live` and `sync`.
//!
//! # What this crate owns
//!
//! The embedder's front door and nothing more: the [`Builder`] (hooks, app,
//! store, configuration, then start or run), the started [`Server`] (its
//! handle, its `tower`/hyper service, with feature `axum` an
//! `axum::Router`, `serve` on either runtime), [`Error`]s that say what to
//! fix, and re-exports of what an embedder needs from the crates beneath
//! (`live-core`, `sync-core`, `server-core`, `adapter-common`, the runtime
//! adapters, the stores, `live-broker`, `live-sync-client`). It must never
//! hold server logic of its own: every loop lives in `adapter-common`, every
//! decision in the cores; and a cargo feature that is off must compile none
//! of its dependencies.
//!
//! # Features
//!
//! | feature | brings in |
//! | --- | --- |
//! | `tokio` (default) | the server on tokio: [`Builder::start`], [`Builder::run`], [`TokioRuntime`] |
//! | `smol` | the server on smol: [`Builder::start_on`] with a [`SmolRuntime`]; [`Builder::run`] when `tokio` is off |
//! | `sqlite` (default) | [`Builder::sqlite`]: a durable SQLite file |
//! | `postgres` | [`Builder::postgres`]: PostgreSQL shared by several nodes |
//! | `redis`, `nats` | [`Builder::broker`]: live fans out across nodes |
//! | `client` | [`client`]: the Rust client (live + sync replica), on tokio or smol |
//! | `axum` | [`Server::router`]: the routes as an `axum::Router` |
//!
//! # Example
//!
//! Serve live (`/ws`) and sync (`/_sync/push|pull|snapshot`) with the
//! built-in key-value app and a SQLite file, until Ctrl-C:
//!
//! ```no_run
//! fn main() -> Result<(), live_sync::Error> {
//!     live_sync::Builder::new().sqlite("app.db").run("127.0.0.1:8080")
//! }
//! ```
//!
//! Within a tokio application, start it and keep its handle:
//!
//! ```no_run
//! # async fn app() -> Result<(), live_sync::Error> {
//! let server = live_sync::Builder::new().sqlite("app.db").start().await?;
//! let live = server.handle().clone(); // live.publish("news", r#""hi""#).await
//! # drop(live);
//! server.serve("127.0.0.1:8080").await
//! # }
//! ```
//!
//! The README's examples (axum, hooks, smol, the client) are compiled as
//! tests of this crate with every feature on.

mod builder;
mod error;
#[cfg(feature = "axum")]
mod routes;
mod server;
mod store;

pub use builder::Builder;
pub use error::Error;
#[cfg(feature = "axum")]
pub use routes::Routes;
pub use server::Server;
pub use store::{Builtin, Custom, OpenStore};

pub use adapter_common::http::Service;
pub use adapter_common::{
    AuthRejection, CloseReason, Hooks, MessageCtx, OpenHooks, Runtime, ServerConfig, ServerHandle,
    SessionId,
};
pub use live_core::{HistoryLimits, HistoryRule};
pub use sync_core::{App, KvApp, MemoryStore, Store};

/// The `http` crate, for the request heads [`Hooks`] receive.
pub use http;
/// The sans-IO pub/sub hub.
pub use live_core;
/// The sans-IO server core (hub + engine + every server policy).
pub use server_core;
/// The sans-IO sync engine, replica, protocol types and memory store.
pub use sync_core;

#[cfg(feature = "tokio")]
pub use adapter_tokio::TokioRuntime;

#[cfg(feature = "smol")]
pub use adapter_smol::{ExecutorThreads, SmolRuntime};

#[cfg(feature = "sqlite")]
pub use sync_sqlite::Durability;

/// The Rust client: reconnecting live pub/sub and an offline-first sync
/// replica, on tokio or smol.
#[cfg(feature = "client")]
pub use live_sync_client as client;

/// The README's Rust examples, compiled (and the runnable ones run) by
/// `cargo test -p live-sync --all-features`.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "smol",
    feature = "client",
    feature = "sqlite"
))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
