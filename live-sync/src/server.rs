//! [`Server`]: a started server, its handle for application code, its HTTP
//! service for any framework, and `serve` on each runtime's listener.

// Without a runtime feature there is nothing to serve on: the address guard
// and the listener types have no user then.
#![cfg_attr(
    not(any(feature = "tokio", feature = "smol")),
    allow(dead_code, unused_imports)
)]

use std::future::Future;
use std::net::SocketAddr;

use adapter_common::{Hooks, Runtime, ServerHandle};

use crate::Error;

/// A running live + sync server.
///
/// - [`handle`](Self::handle): publish, send, close, subscribe and trim from
///   application code;
/// - [`service`](Self::service): every route (`/ws`, `/_sync/*`, `/healthz`,
///   `/readyz`, `/metrics`) as one `tower::Service` and hyper `Service`, for any
///   framework on either runtime; with feature `axum`,
///   [`router`](Self::router) mounts only the routes asked for;
/// - [`serve`](Self::serve): listen on an address until SIGINT/SIGTERM.
pub struct Server<R: Runtime, H: Hooks> {
    inner: adapter_common::Server<R, H>,
    guarded: bool,
    pub(crate) ws_path: String,
    pub(crate) sync_prefix: String,
}

impl<R: Runtime, H: Hooks> std::fmt::Debug for Server<R, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("ws_path", &self.ws_path)
            .field("sync_prefix", &self.sync_prefix)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime, H: Hooks> Server<R, H> {
    pub(crate) fn new(
        inner: adapter_common::Server<R, H>,
        guarded: bool,
        (ws_path, sync_prefix): (String, String),
    ) -> Self {
        Server {
            inner,
            guarded,
            ws_path,
            sync_prefix,
        }
    }

    /// The handle for server-side publish, send, close, subscribe, trim.
    /// Cheap to clone; share it with the application's handlers.
    pub fn handle(&self) -> &ServerHandle<H::User> {
        self.inner.handle()
    }

    /// Every route as one `tower::Service` (and hyper `Service`): hand it
    /// to a framework's fallback or serve it on hyper connections.
    pub fn service(&self) -> adapter_common::http::Service<R, H> {
        self.inner.service()
    }

    /// Graceful shutdown: sessions closed with 1001, every accepted push
    /// persisted and answered. Stop accepting connections first.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    /// The server beneath, for the layers' own functions (`adapter_tokio::serve_tls`, ...).
    pub fn into_inner(self) -> adapter_common::Server<R, H> {
        self.inner
    }

    /// Refuses to serve an address other machines reach when nobody is
    /// authenticated and anonymous access was not asked for.
    fn check_protected(&self, addr: SocketAddr) -> Result<(), Error> {
        if self.guarded && !addr.ip().is_loopback() {
            return Err(Error::Unprotected {
                addr: addr.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(feature = "tokio")]
impl<H: Hooks> Server<adapter_tokio::TokioRuntime, H> {
    /// Listens on `addr` (`HOST:PORT`) and serves until SIGINT or SIGTERM,
    /// then shuts down gracefully.
    pub async fn serve(self, addr: &str) -> Result<(), Error> {
        self.serve_until(addr, adapter_tokio::shutdown_signal())
            .await
    }

    /// As [`serve`](Self::serve), until `shutdown` resolves.
    pub async fn serve_until(
        self,
        addr: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| bind_error(addr, source))?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on a listener already bound (port 0 in tests, a socket handed
    /// over by systemd, ...) until `shutdown` resolves.
    pub async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.check_protected(listener.local_addr()?)?;
        adapter_tokio::serve(listener, self.inner, shutdown).await?;
        Ok(())
    }
}

#[cfg(feature = "smol")]
impl<H: Hooks> Server<adapter_smol::SmolRuntime, H> {
    /// Listens on `addr` (`HOST:PORT`) and serves until SIGINT or SIGTERM,
    /// then shuts down gracefully.
    pub async fn serve(self, addr: &str) -> Result<(), Error> {
        self.serve_until(addr, adapter_smol::shutdown_signal())
            .await
    }

    /// As [`serve`](Self::serve), until `shutdown` resolves.
    pub async fn serve_until(
        self,
        addr: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let listener = smol::net::TcpListener::bind(addr)
            .await
            .map_err(|source| bind_error(addr, source))?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on a listener already bound (port 0 in tests, a socket handed
    /// over by systemd, ...) until `shutdown` resolves.
    pub async fn serve_on(
        self,
        listener: smol::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.check_protected(listener.local_addr()?)?;
        adapter_smol::serve(listener, self.inner, shutdown).await?;
        Ok(())
    }
}

/// A bind failure; an address that does not parse is named as such.
#[cfg(any(feature = "tokio", feature = "smol"))]
fn bind_error(addr: &str, source: std::io::Error) -> Error {
    if source.kind() == std::io::ErrorKind::InvalidInput {
        Error::Address {
            addr: addr.to_owned(),
        }
    } else {
        Error::Bind {
            addr: addr.to_owned(),
            source,
        }
    }
}
