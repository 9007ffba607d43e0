//! What the server core is configured with: the two cores' settings, the sync
//! request limits, and whether the store is shared with other nodes.

use live_core::HubConfig;
use sync_core::{EngineConfig, Limits};

/// The server core's configuration. `CoreConfig::default()` is a working
/// single-node configuration with the cores' defaults.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CoreConfig {
    /// The hub's limits, timers and built-in commands.
    pub hub: HubConfig,
    /// The sync engine's settings.
    pub engine: EngineConfig,
    /// Sync request limits (body size, push batch, pull page).
    pub sync_limits: Limits,
    /// The store is shared with other nodes (PostgreSQL): a push refused
    /// because another node wrote its scope meanwhile is pushed again after
    /// reloading that scope, in the next batch, which the store writes while
    /// still holding the scope (so it is not refused again); should it be
    /// refused all the same [`CoreConfig::stale_retries`] times (a store
    /// that does not hold scopes), it is answered 503 `unavailable`.
    /// Sequence gaps are verified against the store before they are refused.
    pub shared_store: bool,
    /// How often one push is pushed again after stale refusals. Default 8.
    pub stale_retries: u8,
    /// Seed of the hub's session-id generator.
    pub seed: u64,
}

impl CoreConfig {
    /// The default configuration with `seed` for session ids.
    pub fn with_seed(seed: u64) -> Self {
        CoreConfig {
            seed,
            stale_retries: 8,
            ..CoreConfig::default()
        }
    }
}
