//! Sans-IO offline-first sync: protocol types, the server engine, the client
//! replica and an in-memory store.
//!
//! Owns every sync protocol decision. It must never do IO, read a clock, spawn a
//! thread, or use a global random number generator: time and randomness are
//! arguments, and the same inputs give the same outputs byte for byte.
//!
//! Layout:
//! - [`protocol`]: the JSON wire types (go-mizu compatible) and error codes;
//! - [`app`]: the [`App`] trait and the built-in key-value [`KvApp`];
//! - [`engine`]: the server [`Engine`] with Ready/advance persistence;
//! - [`store`]: the [`Store`] contract, [`Batch`] and [`MemoryStore`];
//! - [`handler`]: parsing HTTP / WebSocket input into requests, with limits;
//! - [`client`]: the client [`Replica`].
//!
//! A server driver, in short (an adapter runs the store call off its executor):
//!
//! ```
//! use sync_core::{Engine, EngineConfig, KvApp, Limits, MemoryStore, Output, RequestId, Store, Timestamp};
//! use sync_core::handler::parse_http;
//!
//! let mut store = MemoryStore::new();
//! let mut engine = Engine::recover(KvApp::new(), EngineConfig::default(), store.load().unwrap()).unwrap();
//!
//! // A request arrives: parse, authorize scopes, hand it to the engine.
//! let body = br#"{"mutations":[{"id":"m1","name":"put","args":{"key":"a","value":1}}]}"#;
//! let mut request = parse_http("POST", "/push", "", body, &Limits::default()).unwrap();
//! request.authorize_scopes(|claimed| Ok(claimed.to_owned())).unwrap();
//! let now = engine.handle_request(Timestamp(1_795_328_895_000), RequestId(1), request);
//! assert!(now.is_none(), "a push is answered once durable");
//!
//! // The persistence loop: persist each Ready, then advance.
//! while let Some(ready) = engine.poll_ready() {
//!     match store.persist(&ready.persist) {
//!         Ok(()) => engine.advance(ready.number).unwrap(),
//!         Err(_) => engine.handle_persist_failed(ready.number).unwrap(),
//!     }
//! }
//! // Then send what was released.
//! while let Some(out) = engine.poll_output() {
//!     match out {
//!         Output::Response { request_id, response } => {
//!             assert_eq!((request_id, response.status), (RequestId(1), 200));
//!         }
//!         Output::Poke { .. } => {
//!             let (topic, data) = out.poke_message().unwrap();
//!             assert_eq!((topic.as_str(), data.as_str()), ("sync:_default", r#"{"cursor":1}"#));
//!         }
//!     }
//! }
//! ```

pub mod app;
pub mod client;
pub mod engine;
pub mod handler;
mod keyed;
pub mod protocol;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use app::{App, AppError, AppErrorKind, KvApp, KvState};
pub use client::{ClientRequest, Replica, ReplicaConfig, ReplicaError, ReplicaEvent, TimerReason};
pub use engine::{Engine, EngineConfig, EngineError, Output, Ready, RecoveryError, RequestId};
pub use handler::{Limits, Operation, Response, SyncRequest};
pub use protocol::*;
pub use store::{Batch, MemoryStore, Recovered, Store};
