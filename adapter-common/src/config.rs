//! Server configuration: paths, the cores' limits and timers, origins,
//! WebSocket buffer sizes, static files.

use std::path::PathBuf;
use std::time::Duration;

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use live_core::HubConfig;
use live_core::handshake::OriginPolicy;
use sync_core::EngineConfig;

/// Everything a server is configured with. `ServerConfig::default()` is a
/// working configuration with the cores' defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// WebSocket endpoint path. Default `/ws`.
    pub ws_path: String,
    /// Prefix of the sync endpoints (`{prefix}/push`, `/pull`, `/snapshot`).
    /// Default `/_sync`.
    pub sync_prefix: String,
    /// The hub's limits, timers and built-in commands.
    pub hub: HubConfig,
    /// Sync request limits (body size, push batch, pull page).
    pub sync_limits: sync_core::Limits,
    /// The sync engine's settings.
    pub engine: EngineConfig,
    /// Which browser origins may open a WebSocket.
    pub origins: OriginPolicy,
    /// Serve files from this directory for paths no other route takes.
    pub static_dir: Option<PathBuf>,
    /// Serve the bundled browser client (`/live-sync.js`, `/live-sync.d.ts`)
    /// and the todo demo (`/`) for paths the static directory does not have.
    /// Off by default for embedders; the server binaries turn it on.
    pub builtin_web: bool,
    /// tungstenite read buffer per connection, in bytes, which is also the
    /// most one socket read takes. tungstenite's default is 128 KiB, far too
    /// much for many mostly idle connections. Each KiB here is about a KiB
    /// of memory per connection; larger frames still arrive whole (the buffer
    /// grows for them), in more reads. Default 512 bytes: a client's frames
    /// (subscribes, publishes, pushes of a few mutations) mostly fit in one
    /// or two reads, and an idle connection costs about 3.6 KB in all (2 KiB
    /// made it 5.1 KB; BENCHMARKS.md "Idle connections"). A server whose
    /// clients send large frames at a high rate may want more.
    pub ws_read_buffer: usize,
    /// tungstenite write buffer target per connection: frames gather up to
    /// this size before being written; a flush writes the rest. Default 8 KiB.
    pub ws_write_buffer: usize,
    /// How long a closing session may take to finish its close handshake (and
    /// a slow consumer to take its last frames) before its socket is dropped.
    /// Default 2 s.
    pub close_grace: Duration,
    /// A connection that wrote less than this long ago waits until this long
    /// after that write before writing again, so the frames queued meanwhile
    /// go out in one write. A connection that was quiet writes at once, so
    /// only sustained streams (a busy topic) wait, by at most this much; each
    /// write then carries several frames, which is what lets one node serve
    /// thousands of subscribers of a busy topic (a write per frame costs more
    /// in the kernel than everything else). Zero: every batch is written as
    /// soon as the writer is free. Default 2 ms.
    pub write_coalesce: Duration,
    /// How long a connection may take to send a complete request head (the
    /// request line and headers, the WebSocket handshake included); a peer
    /// that opens a connection and sends a partial head is dropped after it,
    /// instead of holding a socket and a task forever. It also ends idle
    /// keep-alive connections. Default 10 s.
    pub header_read_timeout: Duration,
    /// How much of a sync request body refused as too large (413) is still
    /// read and thrown away, so that a client in the middle of sending it
    /// can finish and read the answer instead of a broken pipe. A body that
    /// declares more than this, or sends more, or takes longer than
    /// `header_read_timeout`, is cut off and its connection closed.
    /// Default 16 MiB.
    pub oversize_discard_bytes: usize,
    /// Capacity of the server driver's inbox; a full inbox makes readers wait,
    /// which pushes back on the sockets. Default 16 384.
    pub inbox_capacity: usize,
    /// Seed of the hub's session-id generator. Default: from the clock at start.
    pub seed: Option<u64>,
    /// The store is shared with other nodes (PostgreSQL): a push refused
    /// because another node wrote its scope meanwhile is retried (up to a
    /// few times) after reloading that scope, instead of failing; when every
    /// attempt was refused it is answered 503 `unavailable` (nothing was
    /// applied, retry). A batch that met an outage (a restart, an ended
    /// session) is tried again for [`ServerConfig::outage_wait`] before its
    /// pushes are answered 503. Default false.
    pub shared_store: bool,
    /// With a shared store, how long pushes wait for it to come back after
    /// a batch met an outage (see `server_core::CoreConfig::outage_wait`).
    /// Default [`server_core::OUTAGE_WAIT`] (2 s).
    pub outage_wait: Duration,
    /// `{"topic":"refresh","data":{"token":T}}` messages refresh the
    /// session's credential through [`crate::Hooks::refresh`] instead of
    /// reaching [`crate::Hooks::on_message`]. Default off.
    pub token_refresh: bool,
    /// Messages per session per second, as a token bucket (past it an
    /// error frame `rate_limited`, then a close with 4029). Default: none.
    pub message_rate: Option<server_core::RateLimit>,
    /// Most connections open at once; more are answered 503
    /// `too_many_connections`. Default: unbounded.
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client IP; more are answered
    /// 429 `too_many_connections`. Default: unbounded.
    pub max_connections_per_ip: Option<usize>,
    /// Sync requests per second per client (its token's user, else its
    /// IP; loopback is not limited); more are answered 429 `rate_limited`.
    /// Default: unbounded.
    pub sync_rate: Option<server_core::RateLimit>,
    /// Apply the per-client limits (connections per IP, the message rate,
    /// sync requests per IP) to loopback peers too. Off by default:
    /// loopback is this machine (local services, load tests, a reverse
    /// proxy whose clients would all share one address).
    pub limit_loopback: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            ws_path: "/ws".into(),
            sync_prefix: "/_sync".into(),
            hub: HubConfig::default(),
            sync_limits: sync_core::Limits::default(),
            engine: EngineConfig::default(),
            origins: OriginPolicy::Any,
            static_dir: None,
            builtin_web: false,
            ws_read_buffer: 512,
            ws_write_buffer: 8 * 1024,
            close_grace: Duration::from_secs(2),
            write_coalesce: Duration::from_millis(2),
            header_read_timeout: Duration::from_secs(10),
            oversize_discard_bytes: 16 * 1024 * 1024,
            inbox_capacity: 16 * 1024,
            seed: None,
            shared_store: false,
            outage_wait: server_core::OUTAGE_WAIT,
            token_refresh: false,
            message_rate: None,
            max_connections: None,
            max_connections_per_ip: None,
            sync_rate: None,
            limit_loopback: false,
        }
    }
}

impl ServerConfig {
    /// The server core's part of this configuration, with `seed` for
    /// session ids.
    pub fn core_config(&self, seed: u64) -> server_core::CoreConfig {
        let mut core = server_core::CoreConfig::with_seed(seed);
        core.hub = self.hub.clone();
        core.engine = self.engine.clone();
        core.sync_limits = self.sync_limits;
        core.shared_store = self.shared_store;
        core.outage_wait = self.outage_wait;
        core.token_refresh = self.token_refresh;
        core.message_rate = self.message_rate;
        core
    }

    /// The tungstenite configuration for accepted sockets: small buffers, and
    /// a message limit one byte over the hub's read limit (a bigger message is
    /// refused by tungstenite before it is buffered, and closed with 1009).
    pub fn websocket_config(&self) -> WebSocketConfig {
        let limit = self.hub.limits.read_limit;
        WebSocketConfig::default()
            .read_buffer_size(self.ws_read_buffer)
            .write_buffer_size(self.ws_write_buffer)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit))
    }
}
