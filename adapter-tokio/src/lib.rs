//! tokio runtime adapter for `live-core` and `sync-core`.
//!
//! Owns: sockets, timers, tasks and storage on tokio. It must never hold protocol
//! logic that could live in a core.

/// The Rust client: reconnecting live pub/sub and an offline-first sync replica.
pub mod client;
