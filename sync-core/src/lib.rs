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

pub mod app;
pub mod client;
pub mod engine;
pub mod handler;
pub mod protocol;
pub mod store;

pub use app::{App, AppError, AppErrorKind, KvApp, KvState};
pub use client::{ClientRequest, Replica, ReplicaConfig, ReplicaError, ReplicaEvent, TimerReason};
pub use engine::{Engine, EngineConfig, EngineError, Output, Ready, RecoveryError, RequestId};
pub use handler::{Limits, Operation, Response, SyncRequest};
pub use protocol::*;
pub use store::{Batch, MemoryStore, Recovered, Store};
