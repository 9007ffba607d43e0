//! The accept loop: the one piece of serving that is tokio-specific besides
//! the runtime itself.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_common::{Hooks, Server};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::TokioRuntime;

/// How long shutdown waits for HTTP exchanges in flight and for WebSocket
/// close handshakes before returning anyway.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Serves `server` on `listener` until `shutdown` resolves, then shuts down
/// gracefully: stops accepting, closes every WebSocket session with 1001,
/// persists and answers every push already accepted, lets HTTP exchanges in
/// flight finish, and waits (at most a few seconds) for close frames to be
/// written. Returns once all of that is done.
pub async fn serve<H: Hooks>(
    listener: TcpListener,
    server: Server<TokioRuntime, H>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let service = server.service();
    // Tells every HTTP connection to finish its exchange in flight and stop.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    // One clone per connection task: the strong count says how many are left.
    let tracker = Arc::new(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept:
                    // keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(service.config().header_read_timeout)
            .serve_connection(TokioIo::new(stream), service.clone())
            .with_upgrades();
        let mut stopping = stopping.clone();
        let tracked = tracker.clone();
        tokio::spawn(async move {
            let _tracked = tracked;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; closing sessions and finishing committed work");
    server.shutdown().await;
    let _ = stop.send(true);
    let started = Instant::now();
    while (Arc::strong_count(&tracker) > 1 || service.open_websockets() > 0)
        && started.elapsed() < DRAIN_GRACE
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
