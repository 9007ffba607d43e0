//! [`Server`]: starting the driver on a server core recovered from the
//! store, and the handle and HTTP service an adapter's accept loop and the
//! application use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use server_core::ServerCore;
use sync_core::{App, RecoveryError, Store, Timestamp};

use crate::config::ServerConfig;
use crate::driver::Driver;
use crate::handle::ServerHandle;
use crate::hooks::{HookPolicy, Hooks};
use crate::http::Service;
use crate::outbox::FlushBoard;
use crate::runtime::Runtime;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store could not be read.
    #[error("loading the store failed: {0}")]
    Store(String),
    /// The stored records do not form a valid state.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
}

/// A running server: its [`ServerHandle`] for application code and its
/// [`Service`] for the accept loop (or for mounting into another router).
pub struct Server<R: Runtime, H: Hooks> {
    handle: ServerHandle<H::User>,
    service: Service<R, H>,
}

impl<R: Runtime, H: Hooks> Server<R, H> {
    /// Loads `store` (on a blocking thread), recovers the engine from it, and
    /// starts the server's driver on `rt`. `app` is the sync application (the
    /// built-in `sync_core::KvApp` for plain documents).
    pub async fn start<P, S>(
        rt: R,
        config: ServerConfig,
        hooks: H,
        app: P,
        store: S,
    ) -> Result<Self, StartError>
    where
        P: App + Send + 'static,
        P::State: Send,
        S: Store + Send + 'static,
    {
        let inline_jobs = !store.blocks();
        let store = Arc::new(Mutex::new(store));
        let loading = store.clone();
        let recovered = rt
            .spawn_blocking(move || {
                let mut store = loading.lock().unwrap_or_else(PoisonError::into_inner);
                store.load().map_err(|e| e.to_string())
            })
            .await
            .ok_or_else(|| StartError::Store("loading panicked".into()))?
            .map_err(StartError::Store)?;
        let hooks = Arc::new(hooks);
        let wall = rt.wall_clock();
        let seed = config.seed.unwrap_or_else(|| seed_from(wall));
        let now = rt.now();
        let since_epoch = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let core = ServerCore::new(
            now,
            Timestamp::from_millis(since_epoch.as_millis() as u64),
            config.core_config(seed),
            HookPolicy(hooks.clone()),
            app,
            recovered,
        )?;
        let (inbox, receiver) = async_channel::bounded(config.inbox_capacity.max(1));
        let flushes = Arc::new(FlushBoard::default());
        let clock: Arc<dyn crate::runtime::Clock> = Arc::new(rt.clone());
        let driver = Driver {
            rt: rt.clone(),
            hooks: hooks.clone(),
            core,
            store,
            inline_jobs,
            weak: inbox.downgrade(),
            flushes: flushes.clone(),
            clock: clock.clone(),
            flushes_read: Vec::new(),
            conns: HashMap::new(),
            answers: HashMap::new(),
            tickets: HashMap::new(),
            broker: None,
            shutdown: Vec::new(),
        };
        rt.spawn(driver.run(receiver));
        let handle = ServerHandle {
            inbox,
            flushes,
            clock,
        };
        let service = Service::new(rt, hooks, Arc::new(config), handle.clone());
        Ok(Self { handle, service })
    }

    /// The handle for server-side publish, send, close, subscribe, trim.
    pub fn handle(&self) -> &ServerHandle<H::User> {
        &self.handle
    }

    /// The HTTP service (clone it per connection).
    pub fn service(&self) -> Service<R, H> {
        self.service.clone()
    }

    /// Graceful shutdown of the hub and engine: sessions closed with 1001,
    /// every accepted push persisted and answered. The accept loop must stop
    /// accepting first.
    pub async fn shutdown(&self) {
        self.handle.shutdown().await;
    }
}

/// A seed for session ids when the configuration gives none: the start's
/// wall time and the process id, so two nodes started together differ.
fn seed_from(wall: std::time::SystemTime) -> u64 {
    wall.duration_since(UNIX_EPOCH)
        .map_or(0x5eed, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
}
