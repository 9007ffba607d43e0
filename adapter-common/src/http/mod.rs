//! The HTTP service, runtime-neutral: a hyper 1.x `Service` over any request
//! body, so it serves hyper connections directly and mounts into axum or any
//! tower stack.
//!
//! Routes:
//! - `{ws_path}` (default `/ws`): WebSocket upgrade. live-core's handshake
//!   rules first (405/400/426/403 for a bad method, headers, version or
//!   origin), then [`Hooks::authenticate`] (401), then the upgrade; the
//!   session runs in [`crate::connection::run`].
//! - `{sync_prefix}/push|pull|snapshot` (default `/_sync`): authenticate, read
//!   the body under the limit (413 from `Content-Length` before reading, else
//!   cut off while reading), then the server core, which parses the
//!   request, authorizes its scopes (403) and runs it.
//! - `/healthz`: `ok` while the process serves HTTP (liveness). `/readyz`:
//!   `ready`, or 503 `unavailable` while the node finds its shared store
//!   unreachable (`sync_store_unreachable` in `/metrics`), so a load
//!   balancer sends clients to nodes that can write. (A node shutting down
//!   stops accepting connections, which a health check sees as well.)
//!   `/metrics`: Prometheus text, with the connection limits' and sync rate
//!   limits' refusals.
//! - anything else: a file from the static directory if one is configured,
//!   else 404.
//!
//! Sync requests over [`ServerConfig::sync_rate`] for their client are
//! answered 429 `rate_limited` before their body is read.

pub mod body;
pub mod builtin_web;
pub mod io;
pub mod static_files;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::protocol::Role;
use bytes::Bytes;
use futures_util::future::{Either, select};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::Full;
use live_core::handshake;
use server_core::limits::{ClientRates, ConnectionLimits, ConnectionRefused};

use crate::admission::PeerAddr;
use crate::config::ServerConfig;
use crate::handle::ServerHandle;
use crate::hooks::{AuthRejection, Hooks};
use crate::inbox::SyncBody;
use crate::metrics;
use crate::runtime::Runtime;
use body::BodyError;
use io::HyperIo;

/// The response type of every route.
pub type HttpResponse = Response<Full<Bytes>>;

/// The server's HTTP service. Cheap to clone (one `Arc`).
pub struct Service<R: Runtime, H: Hooks> {
    inner: Arc<Inner<R, H>>,
}

struct Inner<R: Runtime, H: Hooks> {
    rt: R,
    /// WebSocket connections being served (upgraded and not yet ended).
    websockets: Arc<std::sync::atomic::AtomicUsize>,
    hooks: Arc<H>,
    config: Arc<ServerConfig>,
    server: ServerHandle<H::User>,
    /// Open connections against their bounds (the accept loop counts them).
    connections: crate::admission::SharedLimits,
    /// Sync requests per client, when bounded.
    sync_rates: Option<std::sync::Mutex<ClientRates>>,
    /// Connections dropped because their headers (or TLS handshake) did
    /// not arrive within the header read timeout.
    header_timeouts: std::sync::atomic::AtomicU64,
}

impl<R: Runtime, H: Hooks> Clone for Service<R, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Runtime, H: Hooks> Service<R, H> {
    pub(crate) fn new(
        rt: R,
        hooks: Arc<H>,
        config: Arc<ServerConfig>,
        server: ServerHandle<H::User>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                rt,
                websockets: Arc::default(),
                hooks,
                connections: Arc::new(std::sync::Mutex::new(
                    ConnectionLimits::new(config.max_connections, config.max_connections_per_ip)
                        .limit_loopback(config.limit_loopback),
                )),
                sync_rates: config
                    .sync_rate
                    .map(|limit| std::sync::Mutex::new(ClientRates::new(limit))),
                config,
                server,
                header_timeouts: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// The runtime the service spawns its WebSocket sessions on.
    pub fn runtime(&self) -> &R {
        &self.inner.rt
    }

    /// How many upgraded WebSocket connections are still being served. An
    /// accept loop shutting down waits (a bounded time) for this to reach 0,
    /// so close frames reach their peers before the process exits.
    pub fn open_websockets(&self) -> usize {
        self.inner
            .websockets
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a new connection from `ip` against
    /// [`ServerConfig::max_connections`] and
    /// [`ServerConfig::max_connections_per_ip`]: the permit uncounts it when
    /// dropped (keep it in the connection's IO object, see
    /// [`crate::admission::Counted`]).
    pub fn admit(
        &self,
        ip: std::net::IpAddr,
    ) -> Result<crate::admission::Permit, ConnectionRefused> {
        crate::admission::admit(&self.inner.connections, ip)
    }

    /// Counts a connection dropped at the header read timeout (for
    /// `/metrics`).
    pub fn note_header_timeout(&self) {
        self.inner
            .header_timeouts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The configuration the server was started with (an accept loop reads
    /// its connection settings, such as the header read timeout, from it).
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Answers one request.
    pub async fn handle<B>(&self, request: Request<B>) -> HttpResponse
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let config = &self.inner.config;
        let path = request.uri().path().to_owned();
        if path == config.ws_path {
            return self.upgrade(request).await;
        }
        if let Some(rest) = path.strip_prefix(config.sync_prefix.as_str()) {
            if rest.starts_with('/') {
                return self.sync(request, rest).await;
            }
        }
        match path.as_str() {
            "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
            "/readyz" => match self.inner.server.metrics().await {
                Ok(m) if m.sync.store_unreachable > 0 => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store is unreachable from this node",
                ),
                Ok(_) => text(StatusCode::OK, "text/plain; charset=utf-8", "ready\n"),
                Err(_) => unavailable(),
            },
            "/metrics" => match self.inner.server.metrics().await {
                Ok(mut m) => {
                    let connections = crate::admission::lock(&self.inner.connections);
                    m.guard.connections_refused = connections.refused();
                    m.guard.connections_open = connections.open() as u64;
                    drop(connections);
                    m.guard.websockets_open = self.open_websockets() as u64;
                    m.guard.header_timeouts = self
                        .inner
                        .header_timeouts
                        .load(std::sync::atomic::Ordering::Relaxed);
                    if let Some(rates) = &self.inner.sync_rates {
                        m.guard.sync_limited = rates
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .refused();
                    }
                    text(
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        metrics::render(&m),
                    )
                }
                Err(_) => unavailable(),
            },
            _ => self.static_file(request.method(), &path).await,
        }
    }

    async fn upgrade<B: Send + 'static>(&self, request: Request<B>) -> HttpResponse {
        let inner = &self.inner;
        let accept = match handshake::check(&request, &inner.config.origins) {
            Ok(accept) => accept,
            Err(refusal) => {
                tracing::debug!(status = %refusal.status, reason = refusal.reason, "upgrade refused");
                return refusal
                    .response()
                    .map(|()| Full::new(Bytes::from_static(refusal.reason.as_bytes())));
            }
        };
        let (parts, body) = request.into_parts();
        let user = match self.authenticate(&parts).await {
            Ok(user) => user,
            Err(rejection) => return refused(&rejection),
        };
        // Loopback peers are this machine; without a known peer (the service
        // mounted elsewhere) the session is limited like any other.
        let local = !inner.config.limit_loopback
            && parts
                .extensions
                .get::<PeerAddr>()
                .is_some_and(|p| p.0.ip().is_loopback());
        let on_upgrade = hyper::upgrade::on(Request::from_parts(parts, body));
        let rt = inner.rt.clone();
        let server = inner.server.clone();
        let ws_config = inner.config.websocket_config();
        let grace = inner.config.close_grace;
        let coalesce = inner.config.write_coalesce;
        let counter = inner.websockets.clone();
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        inner.rt.spawn(async move {
            let _served = Decrement(counter);
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = HyperIo(upgraded);
                    let ws =
                        WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await;
                    crate::connection::run(rt, server, ws, user, local, grace, coalesce).await;
                }
                Err(e) => tracing::debug!(error = %e, "upgrade did not complete"),
            }
        });
        accept.response().map(|()| Full::new(Bytes::new()))
    }

    async fn sync<B>(&self, request: Request<B>, op_path: &str) -> HttpResponse
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &self.inner;
        let (parts, body) = request.into_parts();
        let user = match self.authenticate(&parts).await {
            Ok(user) => user,
            Err(rejection) => return refused(&rejection),
        };
        if !self.sync_rate_allows(&parts, &user) {
            return json(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many sync requests from this client; retry later",
            );
        }
        let limit = inner.config.sync_limits.max_body_bytes;
        let body = if parts.method == Method::GET {
            SyncBody::Read(Bytes::new())
        } else {
            let mut body = Box::pin(body);
            match body::read_limited(&parts.headers, &mut body, limit).await {
                Ok(bytes) => SyncBody::Read(bytes),
                Err(BodyError::TooLarge { limit, .. }) => {
                    self.discard_beside_answer(&parts.headers, body);
                    SyncBody::TooLarge { limit }
                }
                Err(e) => SyncBody::Unreadable(e.to_string()),
            }
        };
        match inner.server.http_sync(user, &parts, op_path, body).await {
            Ok(response) => sync_response(response),
            Err(_) => unavailable(),
        }
    }

    /// Reads the rest of a refused body in the background while the 413 goes
    /// out, within [`ServerConfig::oversize_discard_bytes`] and
    /// [`ServerConfig::header_read_timeout`]; past either the body is dropped
    /// and hyper closes the connection.
    fn discard_beside_answer<B>(&self, headers: &http::HeaderMap, body: Pin<Box<B>>)
    where
        B: Body<Data = Bytes> + Send + 'static,
    {
        let config = &self.inner.config;
        let bound = config.oversize_discard_bytes;
        if !body::worth_discarding(headers, bound) {
            return;
        }
        let rt = &self.inner.rt;
        let deadline = rt.sleep_until(rt.now() + config.header_read_timeout);
        rt.spawn(async move {
            let discard = std::pin::pin!(body::discard(body, bound));
            match select(discard, std::pin::pin!(deadline)).await {
                Either::Left((outcome, _)) => {
                    tracing::debug!(?outcome, "discarded an oversize body");
                }
                Either::Right(_) => tracing::debug!("gave up discarding an oversize body"),
            }
        });
    }

    /// Whether the client may make one more sync request now. The client is
    /// [`Hooks::client_key`] (a token's user), else its IP address;
    /// loopback addresses are not limited (a local process, or a proxy in
    /// front whose clients would all share one address).
    fn sync_rate_allows(&self, parts: &http::request::Parts, user: &H::User) -> bool {
        let inner = &self.inner;
        let Some(rates) = &inner.sync_rates else {
            return true;
        };
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        let Some(client) = inner.hooks.client_key(user).or_else(|| {
            peer.filter(|ip| inner.config.limit_loopback || !ip.is_loopback())
                .map(|ip| format!("ip:{ip}"))
        }) else {
            return true;
        };
        rates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(inner.rt.now(), &client)
    }

    /// [`Hooks::authenticate`] under the hub's auth deadline: a hook that
    /// hangs (a lookup that never answers) refuses the request with 401
    /// instead of holding it forever.
    async fn authenticate(&self, parts: &http::request::Parts) -> Result<H::User, AuthRejection> {
        let inner = &self.inner;
        let auth = inner.hooks.authenticate(parts);
        let Some(limit) = inner.config.hub.timers.auth_timeout else {
            return auth.await;
        };
        let deadline = inner.rt.sleep_until(inner.rt.now() + limit);
        match select(std::pin::pin!(auth), std::pin::pin!(deadline)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(AuthRejection::unauthorized(
                "authentication did not answer in time",
            )),
        }
    }

    async fn static_file(&self, method: &Method, path: &str) -> HttpResponse {
        let not_found = || json(StatusCode::NOT_FOUND, "not_found", "no such route");
        if method != Method::GET && method != Method::HEAD {
            return not_found();
        }
        let respond = |kind: &'static str, content: Bytes| {
            let body = if method == Method::HEAD {
                Bytes::new()
            } else {
                content
            };
            text(StatusCode::OK, kind, body)
        };
        let config = &self.inner.config;
        if let Some(file) = config
            .static_dir
            .as_ref()
            .and_then(|root| static_files::resolve(root, path))
        {
            let kind = static_files::content_type(&file);
            if let Some(Ok(content)) = self
                .inner
                .rt
                .spawn_blocking(move || static_files::read(&file))
                .await
            {
                return respond(kind, Bytes::from(content));
            }
        }
        match builtin_web::lookup(path).filter(|_| config.builtin_web) {
            Some((kind, content)) => respond(kind, Bytes::from_static(content)),
            None => not_found(),
        }
    }
}

impl<R, H, B> hyper::service::Service<Request<B>> for Service<R, H>
where
    R: Runtime,
    H: Hooks,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}

/// The same service as a `tower::Service`, for axum (`Router::fallback_service`,
/// `route_service`) and other tower stacks.
impl<R, H, B> tower_service::Service<Request<B>> for Service<R, H>
where
    R: Runtime,
    H: Hooks,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        hyper::service::Service::call(self, request)
    }
}

/// Decrements the open-WebSocket count when the connection task ends,
/// however it ends.
struct Decrement(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let body = serde_json::json!({"code": code, "error": message}).to_string();
    text(status, "application/json", body)
}

fn sync_response(response: sync_core::Response) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(status, "application/json", response.body)
}

fn refused(rejection: &AuthRejection) -> HttpResponse {
    json(rejection.status, rejection.code, &rejection.message)
}

fn unavailable() -> HttpResponse {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the server is shutting down",
    )
}
