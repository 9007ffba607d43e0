//! Runtime-neutral server drive loops for `live-core` and `sync-core`.
//!
//! # What this crate owns
//!
//! Everything a server adapter does that is not tied to one async runtime, so
//! the tokio and smol adapters share one copy of every loop:
//!
//! - the [`Runtime`] trait an adapter implements (spawn, spawn a blocking job,
//!   sleep until an instant, read the clock);
//! - the driver (`driver.rs`): one task owning the `server_core::ServerCore`
//!   (the hub, the engine and every server policy), fed by its inbox
//!   (`inbox.rs`), carrying out what the core asks: frames to connection
//!   outboxes (`outbox.rs`), answers to waiting requests, store jobs on a
//!   blocking thread, commands to the broker link, messages and closes to
//!   the hooks. It decides nothing itself;
//! - the WebSocket connection loop ([`connection`]) over any
//!   `Stream + Sink` of tungstenite messages, with write batching;
//! - the HTTP service ([`http`]): `/ws` upgrade with live-core's handshake
//!   rules, the sync endpoints through sync-core's request handler,
//!   `/healthz`, `/readyz`, `/metrics`, static files, capped body reads;
//! - the application hooks ([`Hooks`]), the [`ServerHandle`] for server-side
//!   publish/send/close/subscribe/trim, graceful shutdown;
//! - the accept loop ([`accept`]) over any stream of accepted connections,
//!   with an optional per-connection handshake (TLS, [`tls`]), the
//!   connection limits ([`admission`]) and graceful shutdown;
//! - token authentication for the ready server ([`auth`]): signed tokens
//!   verified with `jsonwebtoken`, their claims judged by `server_core::claims`;
//! - configuration ([`ServerConfig`]) and the command-line flags both server
//!   binaries accept ([`cli`]);
//! - with feature `test-support`, the conformance profile's server
//!   (`conformance`) that every adapter's conformance test runs.
//!
//! # What it must never do
//!
//! Name a runtime: no tokio, smol or async-std types, no runtime-specific
//! timers, sockets or executors. Those come in through [`Runtime`] and through
//! the IO type an adapter's accept loop hands to hyper. Protocol decisions
//! belong to the cores and the server core; this crate only moves bytes
//! between them and the world. Time, wall time included, is read only
//! through [`Runtime`].
//!
//! # What an adapter implements
//!
//! 1. [`Runtime`] for its executor;
//! 2. an accept loop: bind, then hand the listener as a stream of accepted
//!    connections (hyper IO objects) to [`accept::serve_incoming`], which
//!    serves each with hyper's HTTP/1 (upgrades enabled) and shuts down
//!    gracefully;
//! 3. its binary: parse [`cli::ServeArgs`], open the store with
//!    [`cli::ServeArgs::open_store`] on a blocking thread, [`Server::start`],
//!    run the accept loop.

pub mod accept;
pub mod admission;
pub mod auth;
pub mod backplane;
pub mod cli;
mod config;
#[cfg(feature = "test-support")]
pub mod conformance;
pub mod connection;
mod driver;
mod handle;
mod history_flag;
mod hooks;
pub mod http;
mod inbox;
pub use server_core::metrics;
mod outbox;
mod runtime;
mod server;
mod store;
pub mod timer;
pub mod tls;

pub use config::ServerConfig;
pub use handle::ServerHandle;
pub use hooks::{AuthRejection, Hooks, MessageCtx, OpenHooks};
pub use runtime::Runtime;
pub use server::{Server, StartError};
pub use server_core::ServerError;
pub use store::{AnyStore, AnyStoreError, NotBuilt};

pub use live_core::{CloseReason, Command, SessionId};
