//! Connections in hyper's IO shape, without the two costs of the generic
//! shim (smol-hyper's `FuturesIo`) on every request:
//!
//! - **A read syscall per poll.** smol's `TcpStream` tries `recv` before it
//!   waits for readiness, every time it is polled. hyper polls a keep-alive
//!   connection's read side several times per request (to parse, to see an
//!   early close while the answer is computed, to wait for the next
//!   request), so most of those `recv`s answer `EAGAIN`: about five per
//!   request under wrk. [`TcpConn`] remembers that the socket had nothing
//!   and waits for the reactor's next readiness event before it reads
//!   again, as tokio's streams do.
//! - **Zeroing hyper's read buffer.** hyper hands out its buffer's spare
//!   room uninitialised, and a safe `futures_io::AsyncRead` can only read
//!   into initialised bytes, so the shim zeroes all of it (kilobytes) before
//!   every read. [`HyperIo`] reads into a per-thread scratch buffer instead
//!   and copies only the bytes that arrived.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use smol::Async;
use smol::io::{AsyncRead, AsyncWrite};

/// The most one read moves into hyper's buffer.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    /// Where reads land before they are copied into hyper's buffer: one per
    /// executor thread, not one per (mostly idle) connection.
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// A TCP connection that reads only when the reactor said it may have data.
#[derive(Debug)]
pub struct TcpConn {
    io: Arc<Async<TcpStream>>,
    /// The last read found nothing: wait for readiness before the next.
    read_blocked: bool,
}

impl TcpConn {
    /// Wraps an accepted (or connected) smol stream.
    pub fn new(stream: smol::net::TcpStream) -> Self {
        Self {
            io: stream.into(),
            read_blocked: false,
        }
    }
}

impl AsyncRead for TcpConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.read_blocked {
                ready!(self.io.poll_readable(cx))?;
                self.read_blocked = false;
            }
            match self.io.get_ref().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_blocked = true,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncWrite for TcpConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Writes usually fit the socket buffer: try first, as smol does.
        loop {
            match self.io.get_ref().write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
            ready!(self.io.poll_writable(cx))?;
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.io.get_ref().write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
            ready!(self.io.poll_writable(cx))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A TCP socket buffers nothing of its own.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.io.get_ref().shutdown(Shutdown::Write))
    }
}

/// A `futures_io` stream (a [`TcpConn`], or TLS over one) in hyper's IO
/// shape.
#[derive(Debug)]
pub struct HyperIo<T> {
    inner: T,
}

impl<T> HyperIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner }
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining().min(SCRATCH);
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            let scratch = &mut scratch[..room];
            let n = ready!(Pin::new(&mut self.inner).poll_read(cx, scratch))?;
            buf.put_slice(&scratch[..n]);
            Poll::Ready(Ok(()))
        })
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes go both ways, a read that found nothing waits for the peer's
    /// next write, and a peer's close reads as the end.
    #[test]
    fn reads_wait_for_readiness_and_see_every_byte() {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = smol::spawn(async move {
                let mut c = smol::net::TcpStream::connect(addr).await.unwrap();
                c.write_all(b"ping").await.unwrap();
                let mut got = [0u8; 4];
                c.read_exact(&mut got).await.unwrap();
                assert_eq!(&got, b"pong");
                smol::Timer::after(std::time::Duration::from_millis(20)).await;
                c.write_all(b"later").await.unwrap();
            });
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = TcpConn::new(stream);
            let mut got = [0u8; 4];
            conn.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
            conn.write_all(b"pong").await.unwrap();
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b"later");
            client.await;
        });
    }
}
