//! The fuzz targets' checking logic, one function per target taking the raw fuzz
//! input. It lives in a stable workspace crate so that `fuzz/` (cargo-fuzz,
//! nightly flags) holds only thin `fuzz_target!` wrappers, and so that
//! `tests/corpus.rs` replays every committed corpus and regression file through
//! the very same functions under `cargo test`.
//!
//! A target panics when it finds a bug (a panic in a core, or a broken
//! invariant); it never panics on input it merely rejects.

pub mod live_decode;
pub mod live_hub;
pub mod server_core;
pub mod sync_request;
pub mod sync_sim;

/// A target: runs one input, panics on a bug.
pub type Target = fn(&[u8]);

/// Every target by its cargo-fuzz name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("live_decode", live_decode::run),
    ("live_hub", live_hub::run),
    ("server_core", server_core::run),
    ("sync_request", sync_request::run),
    ("sync_sim", sync_sim::run),
];
