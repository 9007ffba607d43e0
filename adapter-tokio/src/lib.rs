//! tokio runtime adapter for `live-core` and `sync-core`.
//!
//! Owns: sockets, timers, tasks and storage on tokio. It must never hold protocol
//! logic that could live in a core.
