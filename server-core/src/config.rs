//! What the server core is configured with: the two cores' settings, the sync
//! request limits, and whether the store is shared with other nodes.

use std::time::Duration;

use live_core::HubConfig;
use sync_core::{EngineConfig, Limits};

/// How long pushes wait for a shared store that went away, by default (see
/// [`CoreConfig::outage_wait`]): long enough to ride out a database restart,
/// short enough that clients hear of a longer outage before they time out.
pub const OUTAGE_WAIT: Duration = Duration::from_secs(2);

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
    /// that does not hold scopes), it is answered 503 `unavailable`. A push
    /// whose batch met an outage of the store is tried again for
    /// [`CoreConfig::outage_wait`] before it is answered 503 (the store's
    /// version check makes that safe even when a try landed unanswered).
    /// Sequence gaps are verified against the store before they are refused.
    pub shared_store: bool,
    /// How often one push is pushed again after stale refusals. Default 8.
    pub stale_retries: u8,
    /// On a shared store, how long pushes wait for the store to come back
    /// after a batch first met an outage (a database restart or failover,
    /// an ended session), timed from when the first failed try went out:
    /// the batch is tried again at once, then after pauses growing from
    /// 50 ms to 500 ms, with the pushes that arrived meanwhile, until a try
    /// is written or this has passed; then failed tries answer 503 at once
    /// until a batch is written again. A try out when the wait ends runs
    /// to its end, so a database that does not answer at all is waited for
    /// at most this plus the store's own timeout. Zero: one more try at
    /// once only, when the first failed quickly. Default [`OUTAGE_WAIT`].
    pub outage_wait: Duration,
    /// Seed of the hub's session-id generator.
    pub seed: u64,
    /// `{"topic":"refresh","data":{"token":T}}` messages are token refreshes
    /// handed out as [`crate::Output::Refresh`] (instead of application
    /// messages). Default off.
    pub token_refresh: bool,
    /// Messages (text or binary frames) one session may send, as a token
    /// bucket; past it a `rate_limited` error frame, then a close (4029) if
    /// it goes on. `None` (default): unlimited.
    pub message_rate: Option<RateLimit>,
}

/// A token bucket: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained rate.
    pub per_second: u32,
    /// Largest burst (also the number of dropped messages tolerated after
    /// the warning before the close).
    pub burst: u32,
}

impl CoreConfig {
    /// The default configuration with `seed` for session ids.
    pub fn with_seed(seed: u64) -> Self {
        CoreConfig {
            seed,
            stale_retries: 8,
            outage_wait: OUTAGE_WAIT,
            ..CoreConfig::default()
        }
    }
}
