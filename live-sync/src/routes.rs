//! The server's routes as an `axum::Router` (feature `axum`): only the
//! routes asked for, so it can be nested under a prefix and merged with the
//! application's own routes without claiming anything else.

use adapter_common::Hooks;
use adapter_tokio::TokioRuntime;

use crate::Server;

/// Which routes [`Server::router_with`] mounts. The WebSocket endpoint and
/// the sync endpoints always; `/healthz`, `/readyz` and `/metrics` only when
/// asked for (an application usually has its own, or must not expose them
/// publicly).
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct Routes {
    health: bool,
    metrics: bool,
}

impl Routes {
    /// The WebSocket and sync endpoints only.
    pub fn new() -> Self {
        Routes::default()
    }

    /// Also `GET /healthz` (`ok`: the process serves) and `GET /readyz`
    /// (`ready`, or 503 while the node finds its shared store
    /// unreachable).
    pub fn health(mut self) -> Self {
        self.health = true;
        self
    }

    /// Also `GET /metrics` (Prometheus text).
    pub fn metrics(mut self) -> Self {
        self.metrics = true;
        self
    }
}

impl<H: Hooks> Server<TokioRuntime, H> {
    /// The WebSocket endpoint (`ws_path`, default `/ws`) and the sync
    /// endpoints (`{sync_prefix}/push|pull|snapshot`, default `/_sync`) as an
    /// `axum::Router`: `.nest("/live", server.router())` serves them under
    /// `/live`, `.merge(server.router())` beside the application's routes.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        self.router_with(Routes::new())
    }

    /// As [`router`](Self::router), with the optional routes of `routes`.
    pub fn router_with<S: Clone + Send + Sync + 'static>(&self, routes: Routes) -> axum::Router<S> {
        let service = self.service();
        let mut router = axum::Router::new()
            .route_service(&self.ws_path, service.clone())
            .route_service(&format!("{}/{{*op}}", self.sync_prefix), service.clone());
        if routes.health {
            router = router
                .route_service("/healthz", service.clone())
                .route_service("/readyz", service.clone());
        }
        if routes.metrics {
            router = router.route_service("/metrics", service);
        }
        router
    }
}
