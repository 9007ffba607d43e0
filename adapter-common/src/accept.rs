//! The accept loop shared by every adapter: count each accepted connection
//! against the connection limits (refusing it with a JSON 429/503 over
//! them), serve it with hyper's HTTP/1 (upgrades enabled) with its peer
//! address in each request, stop on a shutdown future, then shut down
//! gracefully. An adapter only turns its runtime's listener into a
//! stream of hyper IO objects.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, select};
use futures_util::{Stream, StreamExt};
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;

use crate::admission::{self, Counted, PeerAddr};
use crate::hooks::Hooks;
use crate::runtime::Runtime;
use crate::server::Server;
use crate::timer::RuntimeTimer;

/// How long shutdown waits for HTTP exchanges in flight and for WebSocket
/// close handshakes before returning anyway.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed accept (out of descriptors, a reset before accept),
/// so a persistent error does not spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// How often shutdown checks whether the last connections have ended.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Serves `server` on the connections `incoming` yields until `shutdown`
/// resolves, then shuts down gracefully: stops accepting, closes every
/// WebSocket session with 1001, persists and answers every push already
/// accepted, lets HTTP exchanges in flight finish, and waits (at most
/// [`DRAIN_GRACE`]) for close frames to be written. Returns once all of that
/// is done.
///
/// `incoming` is the adapter's listener seen as a stream of accepted
/// connections (an `Err` item is logged and the loop goes on after a short
/// pause); each connection task runs on the server's own runtime.
pub async fn serve_incoming<R, H, S, IO>(
    incoming: S,
    server: Server<R, H>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    R: Runtime,
    H: Hooks,
    S: Stream<Item = io::Result<(IO, SocketAddr)>>,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    serve_incoming_with(incoming, server, shutdown, |io| std::future::ready(Ok(io))).await
}

/// As [`serve_incoming`], with a `handshake` (such as TLS) run on each
/// accepted connection in its own task, within
/// [`crate::ServerConfig::header_read_timeout`], before HTTP is served on
/// what it returns. A handshake that fails or takes too long drops the
/// connection; nobody else waits for it.
pub async fn serve_incoming_with<R, H, S, Raw, IO, F, Fut>(
    incoming: S,
    server: Server<R, H>,
    shutdown: impl Future<Output = ()>,
    handshake: F,
) -> io::Result<()>
where
    R: Runtime,
    H: Hooks,
    S: Stream<Item = io::Result<(Raw, SocketAddr)>>,
    Raw: Send + 'static,
    F: Fn(Raw) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = io::Result<IO>> + Send + 'static,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = server.service();
    let rt = service.runtime().clone();
    // Closed (not sent on) to tell every HTTP connection to finish its
    // exchange in flight and stop; a closed channel wakes every receiver.
    let (stop, stopping) = async_channel::bounded::<()>(1);
    // One clone per connection task: the strong count says how many are left.
    let tracker = Arc::new(());
    // The stream (the listener) lives in this block only: leaving it stops
    // accepting before the rest of the shutdown starts.
    {
        let mut incoming = pin!(incoming);
        let mut shutdown = pin!(shutdown);
        loop {
            let (raw, peer) = match select(incoming.next(), shutdown.as_mut()).await {
                Either::Left((Some(Ok(pair)), _)) => pair,
                Either::Left((Some(Err(e)), _)) => {
                    tracing::warn!(error = %e, "accept failed");
                    rt.sleep_until(rt.now() + ACCEPT_BACKOFF).await;
                    continue;
                }
                // The listener ended by itself: shut down as if asked to.
                Either::Left((None, _)) | Either::Right(_) => break,
            };
            // Counted before the handshake: connections still shaking hands
            // hold their place too.
            let admitted = service.admit(peer.ip());
            rt.spawn(accepted(
                service.clone(),
                handshake.clone(),
                raw,
                peer,
                admitted,
                stopping.clone(),
                tracker.clone(),
            ));
        }
    }
    tracing::info!("stopped accepting; closing sessions and finishing committed work");
    server.shutdown().await;
    stop.close();
    let started = rt.now();
    while (Arc::strong_count(&tracker) > 1 || service.open_websockets() > 0)
        && rt.now().duration_since(started) < DRAIN_GRACE
    {
        rt.sleep_until(rt.now() + DRAIN_POLL).await;
    }
    Ok(())
}

/// One accepted connection's task: its handshake, then HTTP with its peer
/// address in each request, or the JSON refusal if it was over the limits.
async fn accepted<R, H, Raw, IO, F, Fut>(
    service: crate::http::Service<R, H>,
    handshake: F,
    raw: Raw,
    peer: SocketAddr,
    admitted: Result<admission::Permit, server_core::limits::ConnectionRefused>,
    stopping: async_channel::Receiver<()>,
    tracked: Arc<()>,
) where
    R: Runtime,
    H: Hooks,
    F: Fn(Raw) -> Fut,
    Fut: Future<Output = io::Result<IO>>,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let rt = service.runtime().clone();
    let timeout = service.config().header_read_timeout;
    let deadline = rt.sleep_until(rt.now() + timeout);
    let io = match select(pin!(handshake(raw)), pin!(deadline)).await {
        Either::Left((Ok(io), _)) => io,
        Either::Left((Err(e), _)) => {
            tracing::debug!(%peer, error = %e, "handshake failed");
            return;
        }
        Either::Right(_) => {
            tracing::debug!(%peer, "handshake timed out");
            service.note_header_timeout();
            return;
        }
    };
    let permit = match admitted {
        Ok(permit) => permit,
        Err(why) => {
            tracing::debug!(%peer, ?why, "connection refused over the limits");
            let refusal = http1::Builder::new()
                .timer(RuntimeTimer(rt.clone()))
                .header_read_timeout(timeout)
                .keep_alive(false)
                .serve_connection(io, service_fn(admission::refusal(why)));
            if refusal.await.is_err_and(|e| e.is_timeout()) {
                service.note_header_timeout();
            }
            return;
        }
    };
    let serving = service.clone();
    let with_peer = service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(PeerAddr(peer));
        let serving = serving.clone();
        async move { Ok::<_, Infallible>(serving.handle(request).await) }
    });
    let connection = http1::Builder::new()
        .timer(RuntimeTimer(rt))
        .header_read_timeout(timeout)
        .serve_connection(Counted::new(io, permit), with_peer)
        .with_upgrades();
    if serve_connection(connection, peer, stopping, tracked).await {
        service.note_header_timeout();
    }
}

/// One HTTP connection's task: serves it to its end, or, once `stopping` is
/// closed, lets the exchange in flight finish and ends it. Returns whether
/// it ended because a request's headers did not arrive in time. Holds
/// `_tracked` so the accept loop can count the connections left.
async fn serve_connection<IO, Svc>(
    connection: http1::UpgradeableConnection<IO, Svc>,
    peer: SocketAddr,
    stopping: async_channel::Receiver<()>,
    _tracked: Arc<()>,
) -> bool
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    Svc: hyper::service::HttpService<hyper::body::Incoming>,
    Svc::ResBody: 'static,
    <Svc::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = pin!(connection);
    let result = match select(connection.as_mut(), pin!(stopping.recv())).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    match result {
        Ok(()) => false,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
            e.is_timeout()
        }
    }
}
