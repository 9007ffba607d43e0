//! smol runtime adapter for `live-core` and `sync-core`.
//!
//! Owns: what is smol-specific about serving live + sync, and nothing else:
//! the [`SmolRuntime`] implementation of `adapter_common::Runtime` (with
//! [`ExecutorThreads`] to run its executor), the accept loop ([`serve`]) on
//! smol's `TcpListener` with connections in hyper's IO shape ([`HyperIo`],
//! [`TcpConn`]), SIGINT/SIGTERM
//! handling ([`shutdown_signal`]), and the server binary (`src/main.rs`).
//! Every drive loop (the server core's driver, store jobs, connections, HTTP routes, the
//! accept loop's body) lives in `adapter-common`, shared with the tokio
//! adapter. It must never hold protocol logic that could live in a core.
//!
//! # Embedding
//!
//! ```no_run
//! use adapter_common::{OpenHooks, Server, ServerConfig};
//! use adapter_smol::{ExecutorThreads, SmolRuntime, serve, shutdown_signal};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let rt = SmolRuntime::new();
//! let _workers = ExecutorThreads::per_core(&rt)?;
//! smol::block_on(rt.executor().run(async {
//!     let server = Server::start(
//!         rt.clone(),
//!         ServerConfig::default(),
//!         OpenHooks,
//!         sync_core::KvApp::new(),
//!         sync_core::MemoryStore::new(),
//!     )
//!     .await?;
//!     let handle = server.handle().clone(); // publish, send, close, trim ...
//!     let listener = smol::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     serve(listener, server, shutdown_signal()).await?;
//!     # drop(handle);
//!     Ok(())
//! }))
//! # }
//! ```
//!
//! To mount the routes into another hyper server on smol, serve
//! `server.service()` (an `adapter_common::http::Service`, a hyper and tower
//! `Service`) on connections wrapped as `HyperIo::new(TcpConn::new(stream))`.

mod io;
mod runtime;
mod serve;
mod signal;

pub use io::{HyperIo, TcpConn};
pub use runtime::{ExecutorThreads, SmolRuntime};
pub use serve::{serve, serve_tls};
pub use signal::shutdown_signal;
