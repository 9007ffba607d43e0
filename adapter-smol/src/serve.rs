//! The accept loop on smol's `TcpListener`: the listener becomes a stream of
//! connections in hyper's IO shape ([`HyperIo`] over [`TcpConn`]), served by
//! adapter-common's shared loop.

use std::future::Future;

use std::sync::Arc;

use adapter_common::accept::{serve_incoming, serve_incoming_with};
use adapter_common::tls::TlsConfig;
use adapter_common::{Hooks, Server};
use smol::net::TcpListener;

use crate::SmolRuntime;
use crate::io::{HyperIo, TcpConn};

/// Serves `server` on `listener` until `shutdown` resolves, then shuts down
/// gracefully: stops accepting, closes every WebSocket session with 1001,
/// persists and answers every push already accepted, lets HTTP exchanges in
/// flight finish, and waits (at most a few seconds) for close frames to be
/// written. Returns once all of that is done.
pub async fn serve<H: Hooks>(
    listener: TcpListener,
    server: Server<SmolRuntime, H>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, peer)| {
            let _ = stream.set_nodelay(true);
            (HyperIo::new(TcpConn::new(stream)), peer)
        });
        Some((accepted, listener))
    });
    serve_incoming(incoming, server, shutdown).await
}

/// As [`serve`], over TLS with `tls` (see `adapter_common::tls`): each
/// connection's handshake runs in its own task, bounded by the header read
/// timeout.
pub async fn serve_tls<H: Hooks>(
    listener: TcpListener,
    server: Server<SmolRuntime, H>,
    shutdown: impl Future<Output = ()>,
    tls: Arc<TlsConfig>,
) -> std::io::Result<()> {
    let acceptor = futures_rustls::TlsAcceptor::from(tls);
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.inspect(|(stream, _)| {
            let _ = stream.set_nodelay(true);
        });
        Some((accepted, listener))
    });
    let handshake = move |tcp: smol::net::TcpStream| {
        let accepting = acceptor.accept(TcpConn::new(tcp));
        async move { accepting.await.map(HyperIo::new) }
    };
    serve_incoming_with(incoming, server, shutdown, handshake).await
}
