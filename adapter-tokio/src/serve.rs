//! The accept loop on tokio's `TcpListener`: the listener becomes a stream of
//! connections in hyper's IO shape (`TokioIo`), served by adapter-common's
//! shared loop.

use std::future::Future;

use adapter_common::accept::serve_incoming;
use adapter_common::{Hooks, Server};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::TokioRuntime;

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
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, peer)| {
            let _ = stream.set_nodelay(true);
            (TokioIo::new(stream), peer)
        });
        Some((accepted, listener))
    });
    serve_incoming(incoming, server, shutdown).await
}
