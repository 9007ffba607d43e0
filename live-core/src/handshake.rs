//! The WebSocket opening handshake rules (RFC 6455 section 4.2), as pure
//! functions over [`http`] types so every adapter accepts and refuses exactly the
//! same requests.
//!
//! [`check`] inspects an upgrade request and returns either an [`Accept`] (build
//! the `101 Switching Protocols` response with [`Accept::response`]) or a
//! [`Refusal`] (send [`Refusal::response`] and drop the connection):
//! - not `GET`: 405;
//! - HTTP other than 1.1, missing or wrong `Upgrade: websocket` /
//!   `Connection: upgrade`, missing or malformed `Sec-WebSocket-Key` (it must be
//!   base64 of 16 bytes): 400;
//! - `Sec-WebSocket-Version` other than 13: 426 with `Sec-WebSocket-Version: 13`;
//! - an `Origin` the [`OriginPolicy`] refuses: 403.
//!
//! A request without `Origin` does not come from a browser; cross-site WebSocket
//! hijacking is a browser attack, so such requests pass the origin check.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 appends to the client's key.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Which browser origins may open a WebSocket.
#[derive(Clone, Default)]
pub enum OriginPolicy {
    /// Any origin (`*`). The default, as in mizu when no origins are listed.
    #[default]
    Any,
    /// Exactly these origins (`scheme://host[:port]`, compared ASCII
    /// case-insensitively); a `*` entry allows any.
    List(Vec<String>),
    /// A predicate over the `Origin` header value.
    Checker(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginPolicy::Any => f.write_str("Any"),
            OriginPolicy::List(list) => f.debug_tuple("List").field(list).finish(),
            OriginPolicy::Checker(_) => f.write_str("Checker(..)"),
        }
    }
}

impl OriginPolicy {
    /// A policy allowing exactly these origins.
    pub fn list<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        OriginPolicy::List(origins.into_iter().map(Into::into).collect())
    }

    /// A policy asking `check` about each origin.
    pub fn checker(check: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        OriginPolicy::Checker(Arc::new(check))
    }

    /// Whether `origin` is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => list
                .iter()
                .any(|o| o == "*" || o.eq_ignore_ascii_case(origin)),
            OriginPolicy::Checker(check) => check(origin),
        }
    }
}

/// A request that may be upgraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The `Sec-WebSocket-Accept` value.
    pub accept_key: String,
}

impl Accept {
    /// The `101 Switching Protocols` response to send.
    pub fn response(&self) -> Response<()> {
        let mut res = Response::new(());
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&self.accept_key) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        res
    }
}

/// A request that must be refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// Why, for the response body and logs.
    pub reason: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str) -> Self {
        Self { status, reason }
    }

    /// The response to send (426 carries `Sec-WebSocket-Version: 13`, 405 carries
    /// `Allow: GET`).
    pub fn response(&self) -> Response<()> {
        let mut res = Response::new(());
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        if self.status == StatusCode::UPGRADE_REQUIRED {
            h.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(header::ALLOW, HeaderValue::from_static("GET"));
        }
        res
    }
}

/// Applies every handshake rule to `request`.
pub fn check<B>(request: &Request<B>, origins: &OriginPolicy) -> Result<Accept, Refusal> {
    if request.method() != Method::GET {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method must be GET",
        ));
    }
    // The Upgrade mechanism exists in HTTP/1.1 only (HTTP/2 forbids these
    // headers and uses extended CONNECT instead, which is not supported).
    if request.version() != Version::HTTP_11 {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "HTTP/1.1 required"));
    }
    let headers = request.headers();
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "missing Upgrade: websocket",
        ));
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "missing Connection: upgrade",
        ));
    }
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes);
    if version.map(<[u8]>::trim_ascii) != Some(b"13") {
        return Err(Refusal::new(
            StatusCode::UPGRADE_REQUIRED,
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|v| v.as_bytes().trim_ascii())
        .ok_or(Refusal::new(
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key",
        ))?;
    if !matches!(STANDARD.decode(key), Ok(raw) if raw.len() == 16) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "malformed Sec-WebSocket-Key",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| origins.allows(o));
        if !allowed {
            return Err(Refusal::new(StatusCode::FORBIDDEN, "origin not allowed"));
        }
    }
    Ok(Accept {
        accept_key: accept_key(key),
    })
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Whether a comma-separated header contains `token` (ASCII case-insensitive),
/// across all its values.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}
