//! Carrying out the connection limits (`server_core::limits`) in the accept
//! loop: a counted connection holds a [`Permit`] inside its IO object, so
//! it stays counted after a WebSocket upgrade and until its socket is
//! dropped; a refused one is answered with a JSON 429/503 and closed.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::rt::{Read, ReadBufCursor, Write};
use server_core::limits::{ConnectionLimits, ConnectionRefused};

/// The client address of a request, put into its extensions by the accept
/// loop (absent when the service is mounted elsewhere, such as in axum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The limits, shared by the accept loop and every connection's permit.
pub(crate) type SharedLimits = Arc<Mutex<ConnectionLimits>>;

/// One counted connection; dropping it uncounts it.
#[derive(Debug)]
pub struct Permit {
    limits: SharedLimits,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.limits).close(self.ip);
    }
}

/// Counts a connection from `ip`, or says why it is refused.
pub(crate) fn admit(limits: &SharedLimits, ip: IpAddr) -> Result<Permit, ConnectionRefused> {
    lock(limits).try_open(ip)?;
    Ok(Permit {
        limits: limits.clone(),
        ip,
    })
}

pub(crate) fn lock(limits: &SharedLimits) -> std::sync::MutexGuard<'_, ConnectionLimits> {
    limits.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An IO object that holds its connection's permit for as long as it lives
/// (through hyper's upgrade into the WebSocket task).
#[derive(Debug)]
pub struct Counted<IO> {
    io: IO,
    _permit: Permit,
}

impl<IO> Counted<IO> {
    /// `io`, counted by `permit`.
    pub fn new(io: IO, permit: Permit) -> Self {
        Self {
            io,
            _permit: permit,
        }
    }
}

impl<IO: Read + Unpin> Read for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: Write + Unpin> Write for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// The answer to every request of a refused connection:
/// `{"code":"too_many_connections","error":...}` with 429 or 503.
pub(crate) fn refusal(
    why: ConnectionRefused,
) -> impl Fn(
    Request<hyper::body::Incoming>,
) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>
+ Clone {
    move |_request| {
        let body = serde_json::json!({"code": why.code(), "error": why.message()}).to_string();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() =
            StatusCode::from_u16(why.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        std::future::ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permit_counts_until_dropped() {
        let limits: SharedLimits = Arc::new(Mutex::new(ConnectionLimits::new(None, Some(1))));
        let ip = IpAddr::from([192, 0, 2, 1]);
        let permit = admit(&limits, ip).unwrap();
        assert_eq!(admit(&limits, ip).unwrap_err(), ConnectionRefused::PerIp);
        drop(permit);
        assert!(admit(&limits, ip).is_ok());
    }
}
