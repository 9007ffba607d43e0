//! Sync requests over HTTP (`POST {base}/push|pull|snapshot`), for servers
//! that serve sync only over HTTP (go-mizu's, for one). Pokes still arrive on
//! the live connection.
//!
//! One keep-alive HTTP/1.1 connection, opened on first use and again after
//! the server closes it; the replica sends one request at a time, so there
//! is never more than one request on it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sync_core::ClientRequest;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::{ClientError, TokenProvider};

/// Whether `token`'s `exp` has passed at `now` (tokens without a readable
/// `exp` never expire here; the server says so with a 401).
fn expired(token: &str, now: std::time::SystemTime) -> bool {
    super::refresh::expiry(token)
        .is_some_and(|exp| std::time::UNIX_EPOCH + Duration::from_secs(exp) <= now)
}

/// Where and how to send sync requests over HTTP. Clones share one
/// connection.
#[derive(Clone)]
pub struct HttpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    /// `http://host:port/_sync`: the operation's path is appended.
    base: http::Uri,
    authority: String,
    headers: HeaderMap,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
    /// Asked for a token when there is none, it expired, or the server
    /// answered 401; sent as `Authorization: Bearer`.
    tokens: Option<TokenProvider>,
    /// The token in use with `tokens`.
    current: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("base", &self.inner.base)
            .field("headers", &self.inner.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl HttpTransport {
    /// Requests go to `base` (`http://host:port/_sync`), with `token` as
    /// `Authorization: Bearer` when given.
    pub fn new(base: &str, token: Option<&str>) -> Result<Self, ClientError> {
        let bad = |reason| ClientError::InvalidUrl {
            url: base.to_owned(),
            reason,
        };
        let uri: http::Uri = base.parse().map_err(|_| bad("not a URI"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("the scheme must be http (TLS is not built in)"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let authority = if authority.port().is_some() {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let mut headers = HeaderMap::new();
        if let Some(t) = token {
            let v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|e| ClientError::InvalidHeader(e.to_string()))?;
            headers.insert(header::AUTHORIZATION, v);
        }
        Ok(HttpTransport {
            inner: Arc::new(Inner {
                base: uri,
                authority,
                headers,
                conn: Mutex::new(None),
                tokens: None,
                current: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Adds a header to every request (a copy with its own connection).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, ClientError> {
        let n = header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ClientError::InvalidHeader(format!("{name:?}: {e}")))?;
        let v = HeaderValue::from_str(value)
            .map_err(|e| ClientError::InvalidHeader(format!("{n}: {e}")))?;
        let mut headers = self.inner.headers.clone();
        headers.append(n, v);
        self.inner = Arc::new(Inner {
            base: self.inner.base.clone(),
            authority: self.inner.authority.clone(),
            headers,
            conn: Mutex::new(None),
            tokens: self.inner.tokens.clone(),
            current: std::sync::Mutex::new(None),
        });
        Ok(self)
    }

    /// Gets the bearer token from `f` (the browser client's `getToken`): asked
    /// when there is none, when the one in use has passed its `exp`, and
    /// after the server answered 401 (a copy with its own connection; takes
    /// precedence over the token given to [`HttpTransport::new`]).
    pub fn get_token<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<String>> + Send + 'static,
    {
        let mut headers = self.inner.headers.clone();
        headers.remove(header::AUTHORIZATION);
        self.inner = Arc::new(Inner {
            base: self.inner.base.clone(),
            authority: self.inner.authority.clone(),
            headers,
            conn: Mutex::new(None),
            tokens: Some(TokenProvider::new(f)),
            current: std::sync::Mutex::new(None),
        });
        self
    }

    /// The token to send: the one in use while it is valid, else a fresh one.
    async fn token(&self) -> Option<String> {
        let provider = self.inner.tokens.as_ref()?;
        let now = crate::runtime::wall_clock();
        let cached = self.current().clone();
        if let Some(t) = cached
            && !expired(&t, now)
        {
            return Some(t);
        }
        let fresh = provider.token().await;
        *self.current() = fresh.clone();
        fresh
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `req`; the status and body, or why no answer came within
    /// `timeout` (then the connection is dropped, as a reply may still be
    /// on its way and would answer the wrong request).
    pub(crate) async fn send(
        &self,
        req: &ClientRequest,
        timeout: Duration,
    ) -> Result<(u16, Bytes), String> {
        let mut conn = self.inner.conn.lock().await;
        match tokio::time::timeout(timeout, self.exchange(&mut conn, req)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                *conn = None;
                Err(e)
            }
            Err(_) => {
                *conn = None;
                Err(format!("no answer within {timeout:?}"))
            }
        }
    }

    async fn exchange(
        &self,
        conn: &mut Option<SendRequest<Full<Bytes>>>,
        req: &ClientRequest,
    ) -> Result<(u16, Bytes), String> {
        let path = format!(
            "{}{}",
            self.inner.base.path().trim_end_matches('/'),
            req.http_path()
        );
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(
                header::HOST,
                self.inner.base.authority().map_or("", |a| a.as_str()),
            )
            .header(header::CONTENT_TYPE, "application/json");
        for (k, v) in &self.inner.headers {
            builder = builder.header(k, v);
        }
        if let Some(token) = self.token().await {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = builder
            .body(Full::new(req.body_bytes()))
            .map_err(|e| e.to_string())?;
        let sender = match conn.as_mut() {
            Some(s) if !s.is_closed() => s,
            _ => conn.insert(self.open().await?),
        };
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        if status == 401 {
            // Refused: the next attempt asks for another token.
            *self.current() = None;
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let authority = &self.inner.authority;
        let tcp = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "sync http connection ended");
            }
        });
        Ok(sender)
    }
}
