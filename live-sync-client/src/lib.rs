//! The Rust client of live + sync: live pub/sub with automatic reconnect,
//! and an offline-first sync replica over the same connection.
//!
//! # What this crate owns
//!
//! The client's IO around two sans-IO parts it does not own (the wire
//! format, and `sync_core::Replica`, the replica's whole algorithm): the
//! connection task, reconnects, the subscription set, routing of sync
//! frames, and the sync driver. It must never decide sync semantics itself
//! (what to push, pull or retry is the replica's) nor need a particular
//! executor from its caller: it runs on tokio and on smol alike (below).
//!
//! # Runtimes
//!
//! Within a tokio runtime, the client's tasks run on it. Anywhere else (a
//! smol executor, a plain thread), they run on one shared single-threaded
//! tokio runtime on the client's own thread, and everything the application
//! awaits goes through runtime-neutral channels: the same code works on
//! both. `examples/tokio_client.rs` and `examples/smol_client.rs` run it.
//!
//! - [`LiveClient`][live] (`live.rs`, task in `connection.rs`): connect,
//!   subscribe, publish, send, receive [`LiveEvents`][events]; reconnects with
//!   jittered exponential [`Backoff`][backoff] (`backoff.rs`) and replays its
//!   subscription set (`subscriptions.rs`) on each new connection, resuming
//!   each topic with history from the last [`Position`][position] read
//!   (`position.rs`).
//! - [`SyncClient`][sync] (`sync.rs`, task in `sync_driver.rs`): a
//!   [`sync_core::Replica`] whose requests travel as `_sync` messages on a
//!   live client's connection and whose pokes arrive on `sync:<scope>` there
//!   too (`tap.rs` routes those frames away from the application); or, with
//!   [`SyncTransport::Http`][http] (`http_transport.rs`), as HTTP `POST`s to
//!   `/_sync/push|pull|snapshot`.
//! - [`ClientError`][error] (`error.rs`): mistakes of the calling code only;
//!   network trouble is an event, followed by a reconnect.
//!
//! Not built in: TLS (`wss://`, `https://`) and keeping pending mutations
//! across a restart of the process.
//!
//! [live]: crate::LiveClient
//! [events]: crate::LiveEvents
//! [backoff]: crate::Backoff
//! [position]: crate::Position
//! [sync]: crate::SyncClient
//! [http]: crate::SyncTransport::Http
//! [error]: crate::ClientError
//!
//! ```no_run
//! # async fn demo() -> Result<(), live_sync_client::ClientError> {
//! use live_sync_client::{LiveClient, LiveEvent, LiveOptions, SyncClient};
//! use serde_json::json;
//! use sync_core::{KvApp, ReplicaConfig};
//!
//! let (live, mut events) =
//!     LiveClient::connect("ws://127.0.0.1:8080/ws", LiveOptions::default().token("alice"))?;
//! live.subscribe("room").await?;
//! let config = ReplicaConfig::new("user:alice", "laptop-1");
//! let (todos, _sync_events) = SyncClient::start(&live, KvApp::new(), config).await?;
//! todos.mutate("put", json!({"key": "t1", "value": {"title": "milk"}}))?;
//! while let Some(event) = events.recv().await {
//!     if let LiveEvent::Message(m) = event {
//!         println!("{}: {}", m.topic, m.data);
//!     }
//! }
//! # Ok(()) }
//! ```

mod backoff;
mod connection;
mod error;
mod event;
mod http_transport;
mod live;
mod options;
mod position;
mod refresh;
mod runtime;
mod subscriptions;
mod sync;
mod sync_driver;
mod tap;
mod wire;

pub use backoff::Backoff;
pub use error::ClientError;
pub use event::{ConnectionState, DisconnectReason, LiveEvent, Message};
pub use http_transport::HttpTransport;
pub use live::{LiveClient, LiveEvents};
pub use options::{LiveOptions, ReconnectPolicy, TokenProvider};
pub use position::Position;
pub use sync::{SyncClient, SyncEvents};
pub use sync_driver::{SyncStatus, SyncTransport};

/// The replica's types a client application names.
pub use sync_core::{App, KvApp, KvState, ReplicaConfig, ReplicaEvent};
