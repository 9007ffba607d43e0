//! [`Builder`]: hooks, app, store, configuration, then start, as hyper,
//! axum and tonic users build their servers. Every part has a default
//! (everybody let in on loopback, the key-value app, a memory store, the
//! default configuration), so `Builder::new().run("127.0.0.1:8080")` serves.

use adapter_common::backplane::{Broker, BrokerUrl};
use adapter_common::{Hooks, OpenHooks, Runtime, ServerConfig};
use sync_core::{App, KvApp, Store};

use crate::Error;
use crate::server::Server;
use crate::store::{Builtin, Custom, OpenStore};

/// Builds and starts a live + sync server. See the crate docs for examples.
///
/// Call order: any of [`hooks`](Self::hooks), [`app`](Self::app), a store
/// ([`sqlite`](Self::sqlite), [`postgres`](Self::postgres),
/// [`store`](Self::store), memory by default), [`config`](Self::config) /
/// [`configure`](Self::configure), [`broker`](Self::broker); then
/// [`run`](Self::run) (blocking, serves until SIGINT/SIGTERM),
/// [`start`](Self::start) (on the current tokio runtime) or
/// [`start_on`](Self::start_on) (any runtime, smol's included).
#[derive(Debug)]
#[must_use = "a builder does nothing until started"]
pub struct Builder<H = OpenHooks, A = KvApp, S = Builtin> {
    hooks: H,
    app: A,
    store: S,
    config: ServerConfig,
    broker: BrokerChoice,
    /// No hooks were given and anonymous access was not asked for: serving
    /// on a non-loopback address is refused.
    guarded: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with every default: [`OpenHooks`] (everybody is let in, so
    /// only loopback addresses are served until [`hooks`](Self::hooks) or
    /// [`allow_anonymous`](Self::allow_anonymous) is called), the built-in
    /// key-value app [`KvApp`], a memory store, [`ServerConfig::default`].
    pub fn new() -> Self {
        Builder {
            hooks: OpenHooks,
            app: KvApp::new(),
            store: Builtin::Memory,
            config: ServerConfig::default(),
            broker: BrokerChoice::default(),
            guarded: true,
        }
    }
}

impl<H, A, S> Builder<H, A, S> {
    /// Authentication and authorization: who may connect, which topics and
    /// scopes they may use, what happens with their messages.
    pub fn hooks<H2: Hooks>(self, hooks: H2) -> Builder<H2, A, S> {
        Builder {
            hooks,
            app: self.app,
            store: self.store,
            config: self.config,
            broker: self.broker,
            guarded: false,
        }
    }

    /// The sync application: turns mutations into changes. Default: the
    /// built-in key-value app (`put` / `delete` per key).
    pub fn app<A2: App>(self, app: A2) -> Builder<H, A2, S> {
        Builder {
            hooks: self.hooks,
            app,
            store: self.store,
            config: self.config,
            broker: self.broker,
            guarded: self.guarded,
        }
    }

    /// A store of the application's own.
    pub fn store<S2: Store + Send + 'static>(self, store: S2) -> Builder<H, A, Custom<S2>> {
        self.with_store(Custom(store))
    }

    /// Memory only (the default): everything is lost when the process ends.
    pub fn memory(self) -> Builder<H, A, Builtin> {
        self.with_store(Builtin::Memory)
    }

    /// A SQLite file (created if missing), every commit synced to disk.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(self, path: impl Into<std::path::PathBuf>) -> Builder<H, A, Builtin> {
        self.sqlite_with(path, sync_sqlite::Durability::Full)
    }

    /// A SQLite file with the given durability.
    #[cfg(feature = "sqlite")]
    pub fn sqlite_with(
        self,
        path: impl Into<std::path::PathBuf>,
        durability: sync_sqlite::Durability,
    ) -> Builder<H, A, Builtin> {
        self.with_store(Builtin::Sqlite {
            path: path.into(),
            durability,
        })
    }

    /// PostgreSQL (`postgres://USER@HOST[:PORT]/DB`), which several server
    /// nodes may share: pushes refused because another node wrote first are
    /// retried, and other nodes' commits are followed and poked.
    #[cfg(feature = "postgres")]
    pub fn postgres(self, url: impl Into<String>) -> Builder<H, A, Builtin> {
        self.with_store(Builtin::Postgres { url: url.into() })
    }

    fn with_store<S2>(self, store: S2) -> Builder<H, A, S2> {
        Builder {
            hooks: self.hooks,
            app: self.app,
            store,
            config: self.config,
            broker: self.broker,
            guarded: self.guarded,
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Changes the configuration in place:
    /// `.configure(|c| c.ws_path = "/live".into())`.
    pub fn configure(mut self, change: impl FnOnce(&mut ServerConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Fans live publishes out to other nodes through a broker,
    /// `redis://HOST:PORT` (feature `redis`) or `nats://HOST:PORT` (feature
    /// `nats`), which also keeps the history of topics with one and the
    /// presence of every topic. Over TLS: `rediss://HOST:PORT` or
    /// `tls://HOST:PORT`, the broker verified against the system's
    /// authorities (or see [`broker_ca_file`](Self::broker_ca_file)).
    /// Checked when the server starts.
    pub fn broker(mut self, url: impl Into<String>) -> Self {
        self.broker.url = Some(url.into());
        self
    }

    /// Connects to the [`broker`](Self::broker) over TLS and verifies it
    /// (chain and host name) against the PEM certificates in `path` instead
    /// of the system's authorities (a `redis://` URL is taken as
    /// `rediss://`). Checked when the server starts: an unreadable file, or
    /// one without a certificate, fails the start.
    pub fn broker_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.broker.ca_file = Some(path.into());
        self
    }

    /// Shows the [`broker`](Self::broker) the PEM certificate chain at
    /// `cert`, with the PEM private key at `key`, for a broker that
    /// authenticates its clients by certificate; turns TLS on. Checked
    /// when the server starts.
    pub fn broker_client_cert(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.broker.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// Lets everybody in on any address, not only loopback, when no
    /// [`hooks`](Self::hooks) authenticate requests.
    pub fn allow_anonymous(mut self) -> Self {
        self.guarded = false;
        self
    }
}

impl<H, A, S> Builder<H, A, S>
where
    H: Hooks,
    A: App + Send + 'static,
    A::State: Send,
    S: OpenStore,
{
    /// Opens the store (on `rt`'s blocking pool), recovers the server from
    /// it and starts it on `rt`: a `TokioRuntime` or a `SmolRuntime`.
    pub async fn start_on<R: Runtime>(self, rt: R) -> Result<Server<R, H>, Error> {
        let Builder {
            hooks,
            app,
            store,
            mut config,
            broker,
            guarded,
        } = self;
        check_paths(&config)?;
        let broker = broker.resolve()?;
        if broker.is_some() {
            config.hub.backplane_events = true;
            // Many nodes serve one topic: the broker keeps history and
            // presence.
            config.hub.broker_history = true;
            config.hub.broker_presence = true;
        }
        let store = rt
            .spawn_blocking(move || store.open())
            .await
            .unwrap_or_else(|| {
                Err(Error::Store {
                    store: "opening".into(),
                    source: "the store panicked while opening".into(),
                    hint: "see the panic message above",
                })
            })?;
        config.shared_store |= S::is_shared(&store);
        // Subscribe to other nodes' commits before loading, so none falls between.
        let changes = S::watch(&store);
        let paths = (config.ws_path.clone(), config.sync_prefix.clone());
        let server = adapter_common::Server::start(rt, config, hooks, app, store).await?;
        if let Some(changes) = changes {
            server.handle().follow_changes(changes);
        }
        if let Some(broker) = broker {
            start_broker(&broker, &server).await?;
        }
        Ok(Server::new(server, guarded, paths))
    }

    /// [`start_on`](Self::start_on) the tokio runtime this is awaited in.
    #[cfg(feature = "tokio")]
    pub async fn start(self) -> Result<Server<adapter_tokio::TokioRuntime, H>, Error> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoTokioRuntime)?;
        self.start_on(adapter_tokio::TokioRuntime::new(rt)).await
    }

    /// Starts a runtime (tokio with feature `tokio`, otherwise smol), starts
    /// the server on it and serves `addr` until SIGINT or SIGTERM, then shuts
    /// down gracefully. Blocks until then.
    #[cfg(feature = "tokio")]
    pub fn run(self, addr: &str) -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        runtime.block_on(async { self.start().await?.serve(addr).await })
    }

    /// Starts a smol executor on one thread per core, starts the server on it
    /// and serves `addr` until SIGINT or SIGTERM, then shuts down gracefully.
    /// Blocks until then.
    #[cfg(all(feature = "smol", not(feature = "tokio")))]
    pub fn run(self, addr: &str) -> Result<(), Error> {
        let rt = adapter_smol::SmolRuntime::new();
        let workers = adapter_smol::ExecutorThreads::per_core(&rt).map_err(Error::Runtime)?;
        let served = smol::block_on(async { self.start_on(rt.clone()).await?.serve(addr).await });
        drop(workers);
        served
    }
}

/// Paths the routes are mounted at must be absolute and not end in `/`.
fn check_paths(config: &ServerConfig) -> Result<(), Error> {
    let bad = |what: &str, path: &str| {
        Err(Error::Config(format!(
            "{what} {path:?} must start with '/' and not end with it (such as \"/ws\", \"/_sync\")"
        )))
    };
    if !config.ws_path.starts_with('/')
        || (config.ws_path.len() > 1 && config.ws_path.ends_with('/'))
    {
        return bad("ws_path", &config.ws_path);
    }
    if !config.sync_prefix.starts_with('/') || config.sync_prefix.ends_with('/') {
        return bad("sync_prefix", &config.sync_prefix);
    }
    Ok(())
}

/// The broker as given to the builder, checked when the server starts.
#[derive(Debug, Default)]
struct BrokerChoice {
    url: Option<String>,
    ca_file: Option<std::path::PathBuf>,
    client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl BrokerChoice {
    fn resolve(self) -> Result<Option<Broker>, Error> {
        let Some(url) = self.url else {
            return match (self.ca_file, self.client_cert) {
                (None, None) => Ok(None),
                _ => Err(Error::BrokerUrl(
                    "TLS files given (Builder::broker_ca_file, Builder::broker_client_cert) \
                     without a broker URL (Builder::broker)"
                        .into(),
                )),
            };
        };
        let mut broker = Broker::new(url.parse::<BrokerUrl>().map_err(Error::BrokerUrl)?);
        if let Some(path) = self.ca_file {
            broker = broker.with_ca_file(path);
        }
        if let Some((cert, key)) = self.client_cert {
            broker = broker.with_client_cert(cert, key);
        }
        Ok(Some(broker))
    }
}

/// Links the server to its broker: on the current tokio runtime when there
/// is one, otherwise on the link's own thread.
#[cfg(any(feature = "redis", feature = "nats"))]
async fn start_broker<R: Runtime, H: Hooks>(
    broker: &Broker,
    server: &adapter_common::Server<R, H>,
) -> Result<(), Error> {
    live_broker::start_anywhere(broker, server.handle().clone()).await?;
    Ok(())
}

#[cfg(not(any(feature = "redis", feature = "nats")))]
async fn start_broker<R: Runtime, H: Hooks>(
    _broker: &Broker,
    _server: &adapter_common::Server<R, H>,
) -> Result<(), Error> {
    Err(Error::NoBrokerFeature)
}
