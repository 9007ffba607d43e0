//! Request limits enforced before anything reaches the engine.

/// Limits of the request handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body in bytes (413 above). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most mutations in one push (400 above). Default 100.
    pub max_push_batch: usize,
    /// Pull page size when the request gives none. Default 100.
    pub default_pull_limit: u64,
    /// Largest pull page; larger requests are capped to it. Default 1000.
    pub max_pull_limit: u64,
    /// Longest scope, mutation id or client id, in bytes (400 above).
    /// Default 1024. Every store must be able to key its records by them:
    /// PostgreSQL refuses an index entry of more than about 2.7 KB, and a
    /// key it refuses fails the whole batch it is in, other clients' pushes
    /// with it.
    pub max_key_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_push_batch: 100,
            default_pull_limit: 100,
            max_pull_limit: 1000,
            max_key_bytes: 1024,
        }
    }
}
