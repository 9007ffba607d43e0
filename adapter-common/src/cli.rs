//! The server binaries' flags, shared so the tokio and smol servers accept
//! exactly the same command line. Every flag also reads an environment
//! variable (`LIVE_SYNC_*`); a flag given on the command line wins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use live_core::handshake::OriginPolicy;
use sync_core::MemoryStore;

use crate::auth::{KeyError, TokenHooks, TokenVerifier};
use crate::config::ServerConfig;
use crate::runtime::Runtime;
use crate::server::Server;
use crate::store::{AnyStore, AnyStoreError};

/// `--db-outage-wait-ms` by default: the server core's own default.
const DB_OUTAGE_WAIT_MS: u64 = server_core::OUTAGE_WAIT.as_millis() as u64;
/// `--db-timeout-ms` by default, as `sync_postgres::PgOptions`'s.
const DB_TIMEOUT_MS: u64 = 5000;
/// `--db-pool-size` by default, as `sync_postgres::PgOptions`'s.
const DB_POOL_SIZE: u16 = 4;

/// How hard SQLite syncs a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// fsync every commit: an acknowledged push survives a power loss.
    Full,
    /// A commit survives the process being killed, not a power loss.
    Normal,
}

/// Command line of a live + sync server.
#[derive(Debug, Clone, Parser, PartialEq)]
#[command(
    version,
    about = "live + sync server: WebSocket pub/sub and offline-first sync"
)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LIVE_SYNC_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Where sync data lives: a SQLite file (created if missing), or
    /// `postgres://USER@HOST[:PORT]/DB` for PostgreSQL shared by several
    /// server nodes.
    #[arg(long, env = "LIVE_SYNC_DB", default_value = "live-sync.db")]
    pub db: PathBuf,
    /// Fan live publishes out to other server nodes through a broker:
    /// `redis://HOST:PORT` or `nats://HOST:PORT`, over TLS
    /// `rediss://HOST:PORT` or `tls://HOST:PORT`. None: this node alone.
    #[arg(long, env = "LIVE_SYNC_BROKER")]
    pub broker: Option<crate::backplane::BrokerUrl>,
    /// With --broker: a PEM file of the certificate authorities that sign
    /// the broker's certificate. Connections then use TLS (a `redis://` URL
    /// is taken as `rediss://`) and verify the broker (chain and host name)
    /// against them. Without it, a `rediss://` or `tls://` URL is verified
    /// against the system's authorities.
    #[arg(
        long,
        env = "LIVE_SYNC_BROKER_CA_FILE",
        value_name = "FILE",
        requires = "broker"
    )]
    pub broker_ca_file: Option<PathBuf>,
    /// With --broker: a PEM certificate chain that the node shows a broker
    /// that authenticates its clients by certificate (with
    /// --broker-client-key); connections then use TLS.
    #[arg(
        long,
        env = "LIVE_SYNC_BROKER_CLIENT_CERT",
        value_name = "FILE",
        requires_all = ["broker", "broker_client_key"]
    )]
    pub broker_client_cert: Option<PathBuf>,
    /// The PEM private key of --broker-client-cert.
    #[arg(
        long,
        env = "LIVE_SYNC_BROKER_CLIENT_KEY",
        value_name = "FILE",
        requires = "broker_client_cert"
    )]
    pub broker_client_key: Option<PathBuf>,
    /// Keep sync data in memory only (lost on exit) instead of `--db`.
    #[arg(long, env = "LIVE_SYNC_MEMORY", conflicts_with = "db")]
    pub memory: bool,
    /// SQLite durability.
    #[arg(long, env = "LIVE_SYNC_DURABILITY", value_enum, default_value = "full")]
    pub durability: DurabilityArg,
    /// Serve static files from this directory.
    #[arg(long = "static", env = "LIVE_SYNC_STATIC", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,
    /// Do not serve the bundled browser client and todo demo.
    #[arg(long, env = "LIVE_SYNC_NO_WEB")]
    pub no_web: bool,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "LIVE_SYNC_LOG", default_value = "info")]
    pub log_level: tracing::Level,
    /// WebSocket endpoint path.
    #[arg(long, env = "LIVE_SYNC_WS_PATH", default_value = "/ws")]
    pub ws_path: String,
    /// Sync endpoints prefix.
    #[arg(long, env = "LIVE_SYNC_PREFIX", default_value = "/_sync")]
    pub sync_prefix: String,
    /// Allowed browser origins (repeat or comma-separate; `*` for any). None
    /// given: any origin.
    #[arg(long = "origin", env = "LIVE_SYNC_ORIGINS", value_delimiter = ',')]
    pub origins: Vec<String>,
    /// Topics that keep a history of recent publications, so a client that
    /// names its last position on reconnect gets what it missed:
    /// `PATTERN=SIZE[/TTL]`, `*` matching any characters, TTL in s, m or h
    /// (`chat:*=100/300s`). Repeat or comma-separate; the first matching
    /// rule wins. None: no history.
    #[arg(
        long = "history",
        env = "LIVE_SYNC_HISTORY",
        value_name = "PATTERN=SIZE[/TTL]",
        value_delimiter = ',',
        value_parser = crate::history_flag::parse_history_rule
    )]
    pub history: Vec<live_core::HistoryRule>,
    /// Most topics with a history running. Beyond it the history published
    /// to least recently that nobody is subscribed to is dropped (clients
    /// behind it are told they missed something). With the rules' sizes this
    /// bounds history memory for rules without a TTL.
    #[arg(long, env = "LIVE_SYNC_HISTORY_MAX_TOPICS", default_value_t = 100_000)]
    pub history_max_topics: usize,
    /// Largest WebSocket message accepted, in bytes (bigger closes with 1009).
    #[arg(long, env = "LIVE_SYNC_READ_LIMIT", default_value_t = 4 * 1024 * 1024)]
    pub read_limit: usize,
    /// Send queue bound per session, in messages (over it: closed as slow, 4008).
    #[arg(long, env = "LIVE_SYNC_MAX_QUEUED_MESSAGES", default_value_t = 256)]
    pub max_queued_messages: usize,
    /// Send queue bound per session, in bytes.
    #[arg(long, env = "LIVE_SYNC_MAX_QUEUED_BYTES", default_value_t = 1024 * 1024)]
    pub max_queued_bytes: usize,
    /// Most topics one session may subscribe to.
    #[arg(long, env = "LIVE_SYNC_MAX_TOPICS", default_value_t = 1024)]
    pub max_topics_per_session: usize,
    /// Largest sync HTTP body, in bytes (413 above).
    #[arg(long, env = "LIVE_SYNC_MAX_BODY", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most mutations in one push.
    #[arg(long, env = "LIVE_SYNC_MAX_PUSH_BATCH", default_value_t = 100)]
    pub max_push_batch: usize,
    /// Largest pull page.
    #[arg(long, env = "LIVE_SYNC_MAX_PULL_LIMIT", default_value_t = 1000)]
    pub max_pull_limit: u64,
    /// Log retention: keep this many to twice as many changes per sync
    /// scope, trimming older ones (clients further behind get 410 and take
    /// a snapshot); bounds the log's memory and disk. 0: keep every change.
    #[arg(long, env = "LIVE_SYNC_KEEP_CHANGES", default_value_t = 0)]
    pub keep_changes: u64,
    /// Seconds between heartbeat pings (0: off).
    #[arg(long, env = "LIVE_SYNC_PING_INTERVAL", default_value_t = 25)]
    pub ping_interval: u64,
    /// Seconds of silence after which a session is closed (0: off).
    #[arg(long, env = "LIVE_SYNC_IDLE_TIMEOUT", default_value_t = 60)]
    pub idle_timeout: u64,
    /// tungstenite read buffer per connection, in bytes (about that much
    /// memory per connection; larger frames take more reads).
    #[arg(long, env = "LIVE_SYNC_WS_READ_BUFFER", default_value_t = 512)]
    pub ws_read_buffer: usize,
    /// tungstenite write buffer target per connection, in bytes.
    #[arg(long, env = "LIVE_SYNC_WS_WRITE_BUFFER", default_value_t = 8192)]
    pub ws_write_buffer: usize,
    /// Require tokens signed with HS256 and this secret on every WebSocket
    /// upgrade and sync request (claims: sub, exp, scopes, topics,
    /// publish). Prefer the environment variable: command lines are
    /// visible to other users of the machine.
    #[arg(
        long,
        env = "LIVE_SYNC_JWT_SECRET",
        hide_env_values = true,
        global = true,
        value_name = "SECRET"
    )]
    pub jwt_secret: Option<String>,
    /// Require tokens signed with RS256 or ES256, verified with this public
    /// key: a PEM file, or a JWKS file (`{"keys":[...]}`, keys chosen by
    /// `kid`).
    #[arg(
        long,
        env = "LIVE_SYNC_JWT_PUBLIC_KEY",
        value_name = "FILE",
        conflicts_with = "jwt_secret"
    )]
    pub jwt_public_key: Option<PathBuf>,
    /// Let anybody in without a token, even on an address other machines
    /// can reach (without it, such an address needs --jwt-secret or
    /// --jwt-public-key). Loopback is always open without tokens.
    #[arg(long, env = "LIVE_SYNC_ALLOW_ANONYMOUS", conflicts_with_all = ["jwt_secret", "jwt_public_key"])]
    pub allow_anonymous: bool,
    /// Messages one WebSocket connection may send per second, sustained
    /// (a token bucket; over it a `rate_limited` error frame, then a close
    /// with 4029 if it goes on). Connections from loopback (this machine:
    /// local services, a reverse proxy in front) are not limited. 0:
    /// unlimited.
    #[arg(long, env = "LIVE_SYNC_MAX_MESSAGES_PER_SECOND", default_value_t = 100)]
    pub max_messages_per_second: u32,
    /// Messages one WebSocket connection may send at once, above the
    /// sustained rate.
    #[arg(long, env = "LIVE_SYNC_MESSAGE_BURST", default_value_t = 200)]
    pub message_burst: u32,
    /// Most connections open at once (more: 503 `too_many_connections`),
    /// about 4 KiB each when idle; the process's open-file limit (`ulimit
    /// -n`) may bind first. 0: unbounded.
    #[arg(long, env = "LIVE_SYNC_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,
    /// Most connections open at once from one client IP address (more: 429
    /// `too_many_connections`); loopback counts toward the total only. 0:
    /// unbounded.
    #[arg(long, env = "LIVE_SYNC_MAX_CONNECTIONS_PER_IP", default_value_t = 500)]
    pub max_connections_per_ip: usize,
    /// Sync requests per second per client: its token's user, else its IP
    /// address (loopback is not limited). Bursts of twice as many; more:
    /// 429 `rate_limited`. 0: unlimited.
    #[arg(
        long,
        env = "LIVE_SYNC_MAX_SYNC_REQUESTS_PER_SECOND",
        default_value_t = 50
    )]
    pub max_sync_requests_per_second: u32,
    /// Apply the per-client limits (connections per IP, messages per
    /// second, sync requests per IP) to clients on this machine (loopback)
    /// too; by default loopback is a local service, a load test or a
    /// reverse proxy in front, and only the total bounds it.
    #[arg(long, env = "LIVE_SYNC_LIMIT_LOOPBACK")]
    pub limit_loopback: bool,
    /// Microseconds a connection that just wrote waits before writing again,
    /// so a busy topic's frames go out several per write (a quiet connection
    /// writes at once). 0 writes every batch at once.
    #[arg(long, env = "LIVE_SYNC_WRITE_COALESCE_US", default_value_t = 2000)]
    pub write_coalesce_us: u64,
    /// With PostgreSQL: milliseconds pushes wait for the database to come
    /// back (a restart, a failover, ended sessions) before they are answered
    /// 503; their batch is tried again meanwhile. 0: one more try at once.
    #[arg(long, env = "LIVE_SYNC_DB_OUTAGE_WAIT_MS", default_value_t = DB_OUTAGE_WAIT_MS)]
    pub db_outage_wait_ms: u64,
    /// With PostgreSQL: milliseconds one database operation may take
    /// (connecting, waiting for a pooled connection, a batch, a read)
    /// before it fails. A database that does not answer at all (a network
    /// partition) keeps a push waiting at most --db-outage-wait-ms plus this.
    /// It is also how long a node's transaction may sit idle holding a
    /// scope's lock, so a node that dies mid-batch frees the lock within it
    /// (give every node the same value), and how long PostgreSQL lets one
    /// of its writing statements run, so a wait the node gave up on ends
    /// there too.
    #[arg(
        long,
        env = "LIVE_SYNC_DB_TIMEOUT_MS",
        default_value_t = DB_TIMEOUT_MS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub db_timeout_ms: u64,
    /// With PostgreSQL: pooled connections for reads (pulls, snapshots,
    /// reads of other nodes' commits). The node opens one more, kept for
    /// writing batches.
    #[arg(
        long,
        env = "LIVE_SYNC_DB_POOL_SIZE",
        default_value_t = DB_POOL_SIZE,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub db_pool_size: u16,
    /// With PostgreSQL: a PEM file of the certificate authorities that sign
    /// the database server's certificate. Connections then use TLS and
    /// verify the server (chain and host name) against them (the URL's
    /// `sslrootcert=FILE` does the same). Without it, `sslmode=require` (or
    /// libpq's `verify-full`) in the --db URL uses TLS verified against the
    /// system's authorities; otherwise connections are in the clear.
    #[arg(long, env = "LIVE_SYNC_DB_CA_FILE", value_name = "FILE")]
    pub db_ca_file: Option<PathBuf>,
    /// With PostgreSQL: a PEM certificate chain that the node presents to a
    /// database that authenticates clients by certificate (with
    /// --db-client-key); connections then use TLS. The URL's
    /// `sslcert=FILE&sslkey=FILE` do the same.
    #[arg(
        long,
        env = "LIVE_SYNC_DB_CLIENT_CERT",
        value_name = "FILE",
        requires = "db_client_key"
    )]
    pub db_client_cert: Option<PathBuf>,
    /// The PEM private key of --db-client-cert.
    #[arg(
        long,
        env = "LIVE_SYNC_DB_CLIENT_KEY",
        value_name = "FILE",
        requires = "db_client_cert"
    )]
    pub db_client_key: Option<PathBuf>,
    /// Seconds a client may take to send a request's headers before the
    /// connection is closed (against clients that send one byte at a time).
    #[arg(long, env = "LIVE_SYNC_HEADER_READ_TIMEOUT", default_value_t = 10)]
    pub header_read_timeout: u64,
    /// Serve HTTPS and WSS with this PEM certificate chain (with --tls-key).
    #[arg(
        long,
        env = "LIVE_SYNC_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "LIVE_SYNC_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// What else the binary can do instead of serving.
    #[command(subcommand)]
    pub command: Option<Job>,
}

/// The binary's other jobs.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum Job {
    /// Print a token for a user, signed with --jwt-secret (HS256).
    Token(MintArgs),
}

/// What a minted token says.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct MintArgs {
    /// The user (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Sync scopes the user may use (repeat or comma-separate; `*` matches
    /// anything, `{sub}` is the user).
    #[arg(long = "scope", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Live topics the user may subscribe to (patterns as for --scope).
    #[arg(long = "topic", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Live topics the user may publish to (patterns as for --scope).
    #[arg(long = "publish", value_delimiter = ',')]
    pub publish: Vec<String>,
    /// Seconds the token is valid.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
}

impl MintArgs {
    /// The token these flags describe, valid from `now`, signed with `secret`.
    pub fn mint(&self, secret: &str, now: std::time::SystemTime) -> Result<String, StartupError> {
        if secret.is_empty() {
            return Err(
                "--jwt-secret (or LIVE_SYNC_JWT_SECRET) is required to sign a token".into(),
            );
        }
        let now = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = server_core::claims::Claims {
            sub: self.sub.clone(),
            exp: now.saturating_add(self.ttl),
            scopes: self.scopes.clone(),
            topics: self.topics.clone(),
            publish: self.publish.clone(),
        };
        Ok(crate::auth::mint_hs256(secret.as_bytes(), &claims)?)
    }
}

impl ServeArgs {
    /// The server configuration these flags describe.
    pub fn server_config(&self) -> ServerConfig {
        let mut hub = live_core::HubConfig::default();
        hub.limits.read_limit = self.read_limit;
        hub.backplane_events = self.broker.is_some();
        // Many nodes serve one topic: the broker numbers and keeps history.
        hub.broker_history = self.broker.is_some();
        hub.broker_presence = self.broker.is_some();
        hub.limits.max_queued_messages = self.max_queued_messages;
        hub.limits.max_queued_bytes = self.max_queued_bytes;
        hub.limits.max_topics_per_session = self.max_topics_per_session;
        hub.limits.max_history_topics = self.history_max_topics;
        hub.history = self.history.clone();
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        hub.timers.ping_interval = secs(self.ping_interval);
        hub.timers.idle_timeout = secs(self.idle_timeout);
        let sync_limits = sync_core::Limits {
            max_body_bytes: self.max_body_bytes,
            max_push_batch: self.max_push_batch,
            max_pull_limit: self.max_pull_limit,
            ..sync_core::Limits::default()
        };
        ServerConfig {
            ws_path: self.ws_path.clone(),
            sync_prefix: self.sync_prefix.trim_end_matches('/').to_owned(),
            static_dir: self.static_dir.clone(),
            builtin_web: !self.no_web,
            origins: if self.origins.is_empty() {
                OriginPolicy::Any
            } else {
                OriginPolicy::list(self.origins.iter().map(|o| o.trim().to_owned()))
            },
            hub,
            sync_limits,
            engine: sync_core::EngineConfig {
                keep_changes: (self.keep_changes > 0).then_some(self.keep_changes),
                ..sync_core::EngineConfig::default()
            },
            ws_read_buffer: self.ws_read_buffer,
            ws_write_buffer: self.ws_write_buffer,
            shared_store: self.postgres_url().is_some(),
            outage_wait: Duration::from_millis(self.db_outage_wait_ms),
            token_refresh: true,
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            max_connections_per_ip: (self.max_connections_per_ip > 0)
                .then_some(self.max_connections_per_ip),
            sync_rate: (self.max_sync_requests_per_second > 0).then(|| server_core::RateLimit {
                per_second: self.max_sync_requests_per_second,
                burst: self.max_sync_requests_per_second.saturating_mul(2),
            }),
            header_read_timeout: Duration::from_secs(self.header_read_timeout.max(1)),
            write_coalesce: Duration::from_micros(self.write_coalesce_us),
            limit_loopback: self.limit_loopback,
            message_rate: (self.max_messages_per_second > 0).then_some(server_core::RateLimit {
                per_second: self.max_messages_per_second,
                burst: self.message_burst.max(1),
            }),
            ..ServerConfig::default()
        }
    }

    /// Refuses to serve an address other machines can reach with nobody
    /// authenticated, unless `--allow-anonymous` says so: secure by default.
    pub fn check_protected(&self) -> Result<(), String> {
        let authenticated = self.jwt_secret.is_some() || self.jwt_public_key.is_some();
        if self.addr.ip().is_loopback() || authenticated || self.allow_anonymous {
            return Ok(());
        }
        Err(format!(
            "refusing to listen on {} without authentication: anybody who reaches it could \
             read and write every sync scope and live topic. Pass --jwt-secret SECRET (or \
             --jwt-public-key FILE) to require signed tokens, or --allow-anonymous to let \
             everybody in",
            self.addr
        ))
    }

    /// The hooks these flags describe: tokens verified with the secret or
    /// the public key, or nobody authenticated.
    pub fn hooks(&self) -> Result<TokenHooks, KeyError> {
        if let Some(secret) = &self.jwt_secret {
            return TokenVerifier::hs256(secret.as_bytes()).map(TokenHooks::required);
        }
        if let Some(path) = &self.jwt_public_key {
            return TokenVerifier::from_public_key_file(path).map(TokenHooks::required);
        }
        Ok(TokenHooks::anonymous())
    }

    /// The TLS configuration of `--tls-cert` and `--tls-key`, if given.
    pub fn tls_config(
        &self,
    ) -> Result<Option<std::sync::Arc<crate::tls::TlsConfig>>, crate::tls::TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => crate::tls::server_config(cert, key).map(Some),
            _ => Ok(None),
        }
    }

    /// The PostgreSQL URL when `--db` names one.
    pub fn postgres_url(&self) -> Option<&str> {
        let db = self.db.to_str()?;
        (db.starts_with("postgres://") || db.starts_with("postgresql://")).then_some(db)
    }

    /// The broker from `--broker`, `--broker-ca-file` and
    /// `--broker-client-cert` with `--broker-client-key`, if any.
    pub fn broker(&self) -> Option<crate::backplane::Broker> {
        let mut broker = crate::backplane::Broker::new(self.broker.clone()?);
        if let Some(ca) = &self.broker_ca_file {
            broker = broker.with_ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.broker_client_cert, &self.broker_client_key) {
            broker = broker.with_client_cert(cert, key);
        }
        Some(broker)
    }

    /// The PostgreSQL store's options from `--db-timeout-ms`,
    /// `--db-pool-size`, `--db-ca-file` and `--db-client-cert` with
    /// `--db-client-key`.
    #[cfg(feature = "postgres")]
    pub fn pg_options(&self) -> sync_postgres::PgOptions {
        let options = sync_postgres::PgOptions::default()
            .with_timeout(Duration::from_millis(self.db_timeout_ms))
            .with_pool_size(usize::from(self.db_pool_size));
        let options = match &self.db_ca_file {
            Some(ca) => options.with_ca_file(ca),
            None => options,
        };
        match (&self.db_client_cert, &self.db_client_key) {
            (Some(cert), Some(key)) => options.with_client_cert(cert, key),
            _ => options,
        }
    }

    /// Opens the chosen store. Blocking: call it on a blocking thread.
    /// A store left out of this build (its cargo feature is off) is refused
    /// with an error that names the feature.
    pub fn open_store(&self) -> Result<AnyStore, AnyStoreError> {
        if self.memory {
            return Ok(AnyStore::Memory(MemoryStore::new()));
        }
        if let Some(url) = self.postgres_url() {
            #[cfg(feature = "postgres")]
            return sync_postgres::PgStore::connect(url, self.pg_options())
                .map(|s| AnyStore::Postgres(Box::new(s)))
                .map_err(AnyStoreError::other);
            #[cfg(not(feature = "postgres"))]
            return Err(AnyStoreError::other(crate::store::NotBuilt {
                what: format!("--db {url}"),
                feature: "postgres",
            }));
        }
        #[cfg(feature = "sqlite")]
        {
            let durability = match self.durability {
                DurabilityArg::Full => sync_sqlite::Durability::Full,
                DurabilityArg::Normal => sync_sqlite::Durability::Normal,
            };
            sync_sqlite::SqliteStore::open(&self.db, durability)
                .map(AnyStore::Sqlite)
                .map_err(AnyStoreError::other)
        }
        #[cfg(not(feature = "sqlite"))]
        Err(AnyStoreError::other(crate::store::NotBuilt {
            what: format!("--db {} (a SQLite file)", self.db.display()),
            feature: "sqlite",
        }))
    }

    /// Where sync data lives, for the start-up log line.
    pub fn store_description(&self) -> String {
        if self.memory {
            "memory (ephemeral)".into()
        } else if let Some(url) = self.postgres_url() {
            // Never log a password: keep what follows the credentials, and
            // of the query what is not one.
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let host = match host.split_once('?') {
                Some((path, query)) => {
                    let kept: Vec<&str> = query
                        .split('&')
                        .filter(|pair| !pair.starts_with("password="))
                        .collect();
                    format!("{path}?{}", kept.join("&"))
                }
                None => host.to_owned(),
            };
            format!("postgres {}", host.trim_end_matches('?'))
        } else {
            format!("sqlite {}", self.db.display())
        }
    }
}

/// Why a server binary could not start.
pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

impl ServeArgs {
    /// Runs the subcommand, if one was given, and returns the exit status
    /// (`None`: serve). `now` is the wall time a minted token starts at.
    pub fn run_job(&self, now: std::time::SystemTime) -> Option<std::process::ExitCode> {
        let Job::Token(mint) = self.command.as_ref()?;
        let secret = self.jwt_secret.as_deref().unwrap_or_default();
        Some(match mint.mint(secret, now) {
            Ok(token) => {
                println!("{token}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        })
    }

    /// Sends log lines at `--log-level` and above to stderr. Call once, first.
    pub fn init_logging(&self) {
        tracing_subscriber::fmt()
            .with_max_level(self.log_level)
            .with_writer(std::io::stderr)
            .init();
    }

    /// The server both binaries run: checks that it is protected
    /// ([`ServeArgs::check_protected`]), opens the chosen store on a blocking
    /// thread of `rt`, then starts the built-in key-value app with the
    /// flags' [`TokenHooks`] and configuration.
    pub async fn start_server<R: Runtime>(
        &self,
        rt: R,
    ) -> Result<Server<R, TokenHooks>, StartupError> {
        self.check_protected()?;
        let hooks = self.hooks()?;
        let opening = self.clone();
        let store = rt
            .spawn_blocking(move || opening.open_store())
            .await
            .ok_or("opening the store panicked")??;
        // Subscribe to other nodes' commits before loading, so none falls between.
        let changes = store.watch_changes();
        let server = Server::start(
            rt,
            self.server_config(),
            hooks,
            sync_core::KvApp::new(),
            store,
        )
        .await?;
        if let Some(changes) = changes {
            server.handle().follow_changes(changes);
        }
        Ok(server)
    }

    /// The PostgreSQL-only flags given other than their defaults while
    /// `--db` is not a PostgreSQL URL: they change nothing, and the start-up
    /// log says so.
    pub fn ignored_db_flags(&self) -> Vec<&'static str> {
        if self.postgres_url().is_some() {
            return Vec::new();
        }
        [
            (
                "--db-outage-wait-ms",
                self.db_outage_wait_ms != DB_OUTAGE_WAIT_MS,
            ),
            ("--db-timeout-ms", self.db_timeout_ms != DB_TIMEOUT_MS),
            ("--db-pool-size", self.db_pool_size != DB_POOL_SIZE),
            ("--db-ca-file", self.db_ca_file.is_some()),
            ("--db-client-cert", self.db_client_cert.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// The start-up log line: where the server listens and what it serves.
    pub fn log_listening(&self, addr: SocketAddr) {
        for flag in self.ignored_db_flags() {
            tracing::warn!("{flag} has no effect: --db is not a PostgreSQL URL");
        }
        let auth = if self.jwt_secret.is_some() {
            "tokens (HS256)"
        } else if self.jwt_public_key.is_some() {
            "tokens (RS256/ES256)"
        } else {
            "none: everybody may connect"
        };
        tracing::info!(
            %addr,
            store = %self.store_description(),
            auth,
            tls = self.tls_cert.is_some(),
            "listening: WebSocket {}, sync {}/{{push,pull,snapshot}}",
            self.ws_path,
            self.sync_prefix
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        ServeArgs::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_listen_on_loopback_8080_with_a_sqlite_file() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(a.db, PathBuf::from("live-sync.db"));
        assert!(!a.memory);
        assert_eq!(a.store_description(), "sqlite live-sync.db");
        let c = a.server_config();
        assert_eq!(c.ws_path, "/ws");
        assert_eq!(c.sync_prefix, "/_sync");
        assert_eq!(c.hub.limits.read_limit, 4 * 1024 * 1024);
        assert!(matches!(c.origins, OriginPolicy::Any));
        assert_eq!(c.engine.keep_changes, None, "every change kept by default");
        // The binary's buffer defaults are the library's.
        let library = crate::ServerConfig::default();
        assert_eq!(c.ws_read_buffer, library.ws_read_buffer);
        assert_eq!(c.ws_write_buffer, library.ws_write_buffer);
    }

    #[test]
    fn flags_reach_the_configuration() {
        let a = parse(&[
            "--addr",
            "0.0.0.0:9000",
            "--memory",
            "--read-limit",
            "65536",
            "--max-queued-messages",
            "64",
            "--max-body-bytes",
            "10",
            "--origin",
            "http://a.test,http://b.test",
            "--ping-interval",
            "0",
            "--static",
            "public",
            "--sync-prefix",
            "/sync/",
            "--log-level",
            "debug",
            "--keep-changes",
            "5000",
        ])
        .unwrap();
        assert_eq!(a.addr.port(), 9000);
        assert_eq!(a.log_level, tracing::Level::DEBUG);
        assert_eq!(a.store_description(), "memory (ephemeral)");
        let c = a.server_config();
        assert_eq!(c.hub.limits.read_limit, 65536);
        assert_eq!(c.hub.limits.max_queued_messages, 64);
        assert_eq!(c.sync_limits.max_body_bytes, 10);
        assert_eq!(c.hub.timers.ping_interval, None);
        assert_eq!(c.hub.timers.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.static_dir, Some(PathBuf::from("public")));
        assert_eq!(c.sync_prefix, "/sync");
        assert_eq!(c.engine.keep_changes, Some(5000));
        assert!(c.origins.allows("http://b.test"));
        assert!(!c.origins.allows("http://c.test"));
    }

    #[test]
    fn history_rules_reach_the_hub_and_malformed_ones_are_refused() {
        let a = parse(&[
            "--history",
            "chat:*=100/300s",
            "--history",
            "news=5,feed=2/1m",
        ])
        .unwrap();
        let rules = a.server_config().hub.history;
        let shown: Vec<_> = rules
            .iter()
            .map(|r| (r.pattern.as_str(), r.limits.size, r.limits.ttl))
            .collect();
        assert_eq!(
            shown,
            [
                ("chat:*", 100, Some(Duration::from_secs(300))),
                ("news", 5, None),
                ("feed", 2, Some(Duration::from_secs(60))),
            ]
        );
        assert!(parse(&[]).unwrap().server_config().hub.history.is_empty());
        assert_eq!(
            parse(&[])
                .unwrap()
                .server_config()
                .hub
                .limits
                .max_history_topics,
            100_000
        );
        assert_eq!(
            parse(&["--history-max-topics", "5"])
                .unwrap()
                .server_config()
                .hub
                .limits
                .max_history_topics,
            5
        );
        let err = parse(&["--history", "chat:*=100/300"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a unit"), "{err}");
        assert!(parse(&["--history", "chat"]).is_err());
    }

    #[test]
    fn memory_and_db_conflict_and_bad_values_are_refused() {
        assert!(parse(&["--memory", "--db", "x.db"]).is_err());
        assert!(parse(&["--addr", "not-an-address"]).is_err());
        assert!(parse(&["--read-limit", "-1"]).is_err());
        assert!(parse(&["--durability", "sometimes"]).is_err());
        assert!(parse(&["--log-level", "loud"]).is_err());
    }

    #[test]
    fn a_postgres_url_selects_the_shared_store() {
        let a = parse(&["--db", "postgres://app:secret@db.example:5432/sync"]).unwrap();
        assert_eq!(
            a.postgres_url(),
            Some("postgres://app:secret@db.example:5432/sync")
        );
        assert_eq!(a.store_description(), "postgres db.example:5432/sync");
        let q = parse(&[
            "--db",
            "postgres://db.example/sync?password=secret&sslmode=require",
        ]);
        assert_eq!(
            q.unwrap().store_description(),
            "postgres db.example/sync?sslmode=require"
        );
        let q = parse(&["--db", "postgres://db.example/sync?password=secret"]);
        assert_eq!(q.unwrap().store_description(), "postgres db.example/sync");
        assert!(a.server_config().shared_store);
        let b = parse(&["--db", "local.db"]).unwrap();
        assert_eq!(b.postgres_url(), None);
        assert!(!b.server_config().shared_store);
    }

    #[test]
    fn pushes_wait_two_seconds_for_postgres_unless_told_otherwise() {
        let url = "postgres://db.example/sync";
        let a = parse(&["--db", url]).unwrap();
        let wait = a.server_config().core_config(1).outage_wait;
        assert_eq!(wait, Duration::from_secs(2));
        let b = parse(&["--db", url, "--db-outage-wait-ms", "0"]).unwrap();
        assert_eq!(b.server_config().core_config(1).outage_wait, Duration::ZERO);
        assert!(parse(&["--db-outage-wait-ms", "soon"]).is_err());
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_operations_time_out_after_five_seconds_unless_told_otherwise() {
        let url = "postgres://db.example/sync";
        let a = parse(&["--db", url]).unwrap().pg_options();
        assert_eq!(a.timeout, Duration::from_secs(5));
        assert_eq!(a.pool_size, 4);
        assert_eq!(
            a,
            sync_postgres::PgOptions::default(),
            "the store's defaults"
        );
        let b = parse(&[
            "--db",
            url,
            "--db-timeout-ms",
            "750",
            "--db-pool-size",
            "12",
        ])
        .unwrap();
        let b = b.pg_options();
        assert_eq!(b.timeout, Duration::from_millis(750));
        assert_eq!(b.pool_size, 12);
        assert_eq!(
            a.ca_file, None,
            "in the clear unless the URL or a CA file asks"
        );
        let c = parse(&["--db", url, "--db-ca-file", "/etc/db-ca.pem"]).unwrap();
        let ca = c.pg_options().ca_file;
        assert_eq!(ca.as_deref(), Some(std::path::Path::new("/etc/db-ca.pem")));
        assert!(
            parse(&["--db", url, "--db-ca-file", "ca.pem"])
                .unwrap()
                .ignored_db_flags()
                .is_empty()
        );
        let sqlite = parse(&[
            "--db",
            "local.db",
            "--db-ca-file",
            "ca.pem",
            "--db-timeout-ms",
            "9",
        ]);
        let ignored = sqlite.unwrap().ignored_db_flags();
        assert_eq!(ignored, ["--db-timeout-ms", "--db-ca-file"]);
        assert!(parse(&["--memory"]).unwrap().ignored_db_flags().is_empty());
        let d = parse(&[
            "--db",
            url,
            "--db-client-cert",
            "/etc/node.pem",
            "--db-client-key",
            "/etc/node.key",
        ])
        .unwrap();
        assert_eq!(
            d.pg_options().client_cert,
            Some(sync_postgres::ClientCert {
                cert: "/etc/node.pem".into(),
                key: "/etc/node.key".into()
            })
        );
        // A certificate without its key (or a key alone) is refused.
        assert!(parse(&["--db", url, "--db-client-cert", "node.pem"]).is_err());
        assert!(parse(&["--db", url, "--db-client-key", "node.key"]).is_err());
        // No timeout would let a partitioned database hold pushes forever.
        assert!(parse(&["--db-timeout-ms", "0"]).is_err());
        assert!(parse(&["--db-pool-size", "0"]).is_err());
    }

    #[test]
    fn a_broker_turns_on_the_hubs_backplane_events() {
        let a = parse(&["--broker", "nats://127.0.0.1:4222"]).unwrap();
        assert!(matches!(
            a.broker,
            Some(crate::backplane::BrokerUrl::Nats(_))
        ));
        assert!(a.server_config().hub.backplane_events);
        assert!(a.server_config().hub.broker_history);
        assert!(a.server_config().hub.broker_presence);
        assert!(!parse(&[]).unwrap().server_config().hub.backplane_events);
        assert!(parse(&["--broker", "amqp://x"]).is_err());
        assert_eq!(a.broker().map(|b| b.uses_tls()), Some(false));
    }

    #[test]
    fn a_broker_ca_file_turns_tls_on_and_needs_a_broker() {
        let a = parse(&[
            "--broker",
            "redis://cache.internal:6379",
            "--broker-ca-file",
            "/etc/ca.pem",
        ])
        .unwrap();
        let broker = a.broker().unwrap();
        assert!(broker.uses_tls());
        assert_eq!(broker.ca_file(), Some(std::path::Path::new("/etc/ca.pem")));
        let system = parse(&["--broker", "rediss://cache.internal:6380"]).unwrap();
        assert!(system.broker().unwrap().uses_tls());
        assert_eq!(system.broker().unwrap().ca_file(), None);
        // Alone it would do nothing: refused rather than ignored.
        assert!(parse(&["--broker-ca-file", "/etc/ca.pem"]).is_err());
        assert!(parse(&["--broker", "rediss://h/#insecure"]).is_err());
        let shown = parse(&[
            "--broker",
            "nats://h:4222",
            "--broker-client-cert",
            "n.pem",
            "--broker-client-key",
            "n.key",
        ])
        .unwrap()
        .broker()
        .unwrap();
        assert!(shown.uses_tls());
        assert_eq!(
            shown.client_cert(),
            Some((std::path::Path::new("n.pem"), std::path::Path::new("n.key")))
        );
        assert!(parse(&["--broker", "nats://h", "--broker-client-cert", "n.pem"]).is_err());
        assert!(
            parse(&[
                "--broker-client-cert",
                "n.pem",
                "--broker-client-key",
                "n.key"
            ])
            .is_err()
        );
    }

    #[test]
    fn another_address_than_loopback_needs_auth_or_an_explicit_anonymous() {
        for open in [&["--addr", "127.0.0.1:1"][..], &["--addr", "[::1]:1"]] {
            assert_eq!(parse(open).unwrap().check_protected(), Ok(()));
        }
        let refused = parse(&["--addr", "0.0.0.0:8080"])
            .unwrap()
            .check_protected();
        let message = refused.unwrap_err();
        assert!(message.contains("--jwt-secret"), "{message}");
        assert!(message.contains("--allow-anonymous"), "{message}");
        for allowed in [
            &["--addr", "0.0.0.0:8080", "--jwt-secret", "s"][..],
            &["--addr", "0.0.0.0:8080", "--jwt-public-key", "k.pem"],
            &["--addr", "0.0.0.0:8080", "--allow-anonymous"],
        ] {
            assert_eq!(parse(allowed).unwrap().check_protected(), Ok(()));
        }
        assert!(parse(&["--allow-anonymous", "--jwt-secret", "s"]).is_err());
        assert!(parse(&["--jwt-secret", "s", "--jwt-public-key", "k.pem"]).is_err());
    }

    #[test]
    fn a_secret_makes_token_hooks_and_limits_have_defaults() {
        let a = parse(&["--jwt-secret", "s"]).unwrap();
        assert!(a.hooks().unwrap().requires_tokens());
        assert!(!parse(&[]).unwrap().hooks().unwrap().requires_tokens());
        assert!(parse(&["--jwt-secret", ""]).unwrap().hooks().is_err());
        let c = a.server_config();
        assert!(c.token_refresh);
        assert_eq!(
            c.message_rate,
            Some(server_core::RateLimit {
                per_second: 100,
                burst: 200
            })
        );
        assert_eq!(c.max_connections, Some(100_000));
        assert_eq!(c.max_connections_per_ip, Some(500));
        assert_eq!(
            c.sync_rate.map(|r| (r.per_second, r.burst)),
            Some((50, 100))
        );
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.write_coalesce, Duration::from_millis(2));
        let off = parse(&[
            "--max-messages-per-second",
            "0",
            "--max-connections",
            "0",
            "--max-connections-per-ip",
            "0",
            "--max-sync-requests-per-second",
            "0",
        ])
        .unwrap()
        .server_config();
        assert_eq!(off.message_rate, None);
        assert_eq!(
            (off.max_connections, off.max_connections_per_ip),
            (None, None)
        );
        assert_eq!(off.sync_rate, None);
    }

    #[test]
    fn the_token_subcommand_mints_what_the_server_accepts() {
        let a = parse(&[
            "token",
            "--jwt-secret",
            "s3cret",
            "--sub",
            "alice",
            "--scope",
            "user:{sub},team:*",
            "--topic",
            "chat:*",
            "--ttl",
            "60",
        ])
        .unwrap();
        let Some(Job::Token(mint)) = &a.command else {
            panic!("the token subcommand")
        };
        assert_eq!(mint.scopes, ["user:{sub}", "team:*"]);
        // Minted at a fixed instant far ahead, so the token is valid now and
        // its expiry is exact.
        let at = std::time::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        let token = mint.mint(a.jwt_secret.as_deref().unwrap(), at).unwrap();
        let claims = TokenVerifier::hs256(b"s3cret")
            .unwrap()
            .verify(&token)
            .unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.topics, ["chat:*"]);
        assert_eq!(claims.exp, 4_000_000_060);
        assert!(mint.mint("", at).is_err());
    }

    #[test]
    fn memory_store_opens_without_touching_the_disk() {
        let a = parse(&["--memory"]).unwrap();
        assert!(matches!(a.open_store().unwrap(), AnyStore::Memory(_)));
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_store_opens_the_named_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let a = parse(&["--db", db.to_str().unwrap()]).unwrap();
        assert!(matches!(a.open_store().unwrap(), AnyStore::Sqlite(_)));
        assert!(db.exists());
    }
}
