//! A minimal HTTP/1.1 client over one keep-alive connection (hyper's low-level
//! connection API).
//!
//! Why not a pooled client: the load generator wants exactly one connection per
//! simulated client, and the conformance suite wants to send requests a pooled
//! client would refuse or rewrite (a WebSocket upgrade with a wrong version, a body
//! over the server's limit). The connection is re-opened transparently when the
//! server closed it.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Hang guard for one request; never a pass/fail timing.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Failure to get any HTTP response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The base URL is not `http://host:port`.
    #[error("bad base url {0:?}")]
    BadUrl(String),
    /// Connecting failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// `host:port` dialled.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed (connection reset, protocol error).
    #[error("http: {0}")]
    Hyper(#[from] hyper::Error),
    /// A request could not be built.
    #[error("request: {0}")]
    Request(#[from] http::Error),
    /// No response within [`REQUEST_TIMEOUT`].
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body parsed as JSON, or `Value::Null` with the raw text in a string
    /// field `_raw` when it is not JSON (so an assertion message shows it).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| serde_json::json!({"_raw": String::from_utf8_lossy(&self.body)}))
    }

    /// The body as text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive HTTP/1.1 connection to a server.
pub struct HttpConn {
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl HttpConn {
    /// A connection to `base` (`http://host:port`, any path ignored); it dials on
    /// the first request.
    pub fn new(base: &str) -> Result<Self, HttpError> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| HttpError::BadUrl(base.to_owned()))?;
        let authority = rest.split('/').next().unwrap_or_default().to_owned();
        if authority.is_empty() {
            return Err(HttpError::BadUrl(base.to_owned()));
        }
        Ok(HttpConn {
            authority,
            sender: None,
        })
    }

    /// `host:port` this connection dials.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, HttpError> {
        let alive = matches!(&self.sender, Some(s) if !s.is_closed());
        if !alive {
            let stream = TcpStream::connect(&self.authority)
                .await
                .map_err(|source| HttpError::Connect {
                    addr: self.authority.clone(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                // Ends when the server closes the connection; errors surface on the
                // next request as a closed sender.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("sender set above"))
    }

    /// Sends `req` (its URI only needs a path and query) and reads the whole
    /// response. A `Host` header is added when missing.
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        if !req.headers().contains_key(http::header::HOST) {
            let host =
                HeaderValue::from_str(&self.authority).map_err(|e| HttpError::Request(e.into()))?;
            req.headers_mut().insert(http::header::HOST, host);
        }
        let fut = async {
            let sender = self.connect().await?;
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let out = tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| HttpError::Timeout(REQUEST_TIMEOUT))?;
        if out.is_err() {
            // Never reuse a connection after a failed exchange.
            self.sender = None;
        }
        out
    }

    /// `method path` with `headers` and a body.
    pub async fn request(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<HttpResponse, HttpError> {
        let mut b = Request::builder().method(method).uri(path_and_query);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into()))?;
        self.send(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::service::service_fn;
    use std::convert::Infallible;
    use tokio::net::TcpListener;

    /// A tiny in-test server: echoes method, path, one header and the body length,
    /// and closes the connection after `/close`.
    async fn serve() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, peer) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                        let method = req.method().to_string();
                        let uri = req.uri().to_string();
                        let close = uri == "/close";
                        let auth = req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_owned());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let json = serde_json::json!({
                            "method": method, "uri": uri, "auth": auth, "len": body.len(),
                            "peer": peer.to_string()
                        });
                        let mut resp = hyper::Response::builder()
                            .status(if uri.starts_with("/teapot") { 418 } else { 200 })
                            .header("content-type", "application/json");
                        if close {
                            resp = resp.header("connection", "close");
                        }
                        Ok::<_, Infallible>(
                            resp.body(Full::new(Bytes::from(json.to_string()))).unwrap(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn round_trips_and_keeps_alive() {
        let base = serve().await;
        let mut c = HttpConn::new(&base).unwrap();
        let r = c
            .request(
                Method::POST,
                "/_sync/push",
                &[("authorization", "Bearer a")],
                "12345",
            )
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK);
        let j = r.json();
        assert_eq!(j["method"], "POST");
        assert_eq!(j["uri"], "/_sync/push");
        assert_eq!(j["auth"], "Bearer a");
        assert_eq!(j["len"], 5);
        let r = c
            .request(Method::GET, "/teapot?x=1", &[], "")
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 418);
        assert_eq!(
            r.json()["peer"],
            j["peer"],
            "keep-alive: one connection for both"
        );
    }

    #[tokio::test]
    async fn reconnects_after_server_close() {
        let base = serve().await;
        let mut c = HttpConn::new(&base).unwrap();
        let r = c.request(Method::GET, "/close", &[], "").await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        // Give the connection task a chance to see the close; the request below
        // must succeed either way (fresh dial or reuse is transparent).
        tokio::task::yield_now().await;
        let r = c.request(Method::GET, "/again", &[], "").await;
        let r = match r {
            Ok(r) => r,
            // A race with the close: the next attempt dials afresh.
            Err(_) => c.request(Method::GET, "/again", &[], "").await.unwrap(),
        };
        assert_eq!(r.json()["uri"], "/again");
    }

    #[test]
    fn bad_urls() {
        assert!(HttpConn::new("ws://x:1").is_err());
        assert!(HttpConn::new("http:///x").is_err());
        assert_eq!(
            HttpConn::new("http://127.0.0.1:9/a/b").unwrap().authority(),
            "127.0.0.1:9"
        );
    }

    #[tokio::test]
    async fn connect_refused_is_an_error() {
        // Bind then drop to get a port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let mut c = HttpConn::new(&format!("http://{addr}")).unwrap();
        let e = c.request(Method::GET, "/", &[], "").await.unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
    }
}
