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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_push_batch: 100,
            default_pull_limit: 100,
            max_pull_limit: 1000,
        }
    }
}
