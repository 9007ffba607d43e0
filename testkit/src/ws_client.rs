//! A WebSocket test client speaking the live envelope `{"topic","data"}`.
//!
//! Every wait is bounded by [`WAIT`], a hang guard only: the suite never asserts
//! how long anything took.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

/// Hang guard for one awaited event.
pub const WAIT: Duration = Duration::from_secs(10);

/// Where the client puts its token on the upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlacement {
    /// `Authorization: Bearer T`.
    Header,
    /// `?token=T` on the URL.
    Query,
    /// `Cookie: token=T`.
    Cookie,
}

/// How to open a connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Token and where to put it; `None` sends no token.
    pub token: Option<(String, TokenPlacement)>,
    /// `Origin` header to send.
    pub origin: Option<String>,
    /// `SO_RCVBUF` for the socket, to make a client that stops reading look slow
    /// to the server sooner.
    pub recv_buffer: Option<u32>,
    /// tungstenite's read buffer per connection (its default is 128 KiB, far too
    /// much for thousands of load connections).
    pub read_buffer_size: Option<usize>,
}

impl ConnectOptions {
    /// A bearer token in the `Authorization` header, nothing else.
    pub fn bearer(user: &str) -> Self {
        ConnectOptions {
            token: Some((user.to_owned(), TokenPlacement::Header)),
            ..Default::default()
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server answered the upgrade with a non-101 status.
    #[error("upgrade refused with {status}")]
    Refused {
        /// The status the server answered with.
        status: StatusCode,
    },
    /// Anything else (connect failed, protocol error, hang guard).
    #[error("connect: {0}")]
    Other(String),
}

/// One event read from the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A text or binary frame, parsed as JSON (unparseable frames become
    /// `{"_raw": text}` so an assertion shows them).
    Message(Value),
    /// A close frame with its code (`None` when the frame had no payload).
    Close(Option<u16>),
    /// The connection ended without a close frame (EOF, reset, protocol error).
    Ended(String),
    /// Nothing arrived within [`WAIT`].
    TimedOut,
}

/// A live client over one WebSocket connection.
pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
    barrier_seq: u64,
}

impl WsClient {
    /// Opens a connection to `url` (`ws://host:port/path`).
    pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<WsClient, ConnectError> {
        let mut url = url.to_owned();
        if let Some((t, TokenPlacement::Query)) = &opts.token {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("token=");
            url.push_str(t);
        }
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Other(e.to_string()))?;
        let headers = req.headers_mut();
        match &opts.token {
            Some((t, TokenPlacement::Header)) => {
                headers.insert("authorization", header(&format!("Bearer {t}"))?);
            }
            Some((t, TokenPlacement::Cookie)) => {
                headers.insert("cookie", header(&format!("theme=dark; token={t}"))?);
            }
            _ => {}
        }
        if let Some(o) = &opts.origin {
            headers.insert("origin", header(o)?);
        }
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| ConnectError::Other(format!("no host in {url}")))?;
        let fut = async {
            let addr = tokio::net::lookup_host(&authority)
                .await
                .map_err(|e| ConnectError::Other(e.to_string()))?
                .next()
                .ok_or_else(|| ConnectError::Other(format!("cannot resolve {authority}")))?;
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(|e| ConnectError::Other(e.to_string()))?;
            if let Some(n) = opts.recv_buffer {
                socket
                    .set_recv_buffer_size(n)
                    .map_err(|e| ConnectError::Other(e.to_string()))?;
            }
            let stream = socket
                .connect(addr)
                .await
                .map_err(|e| ConnectError::Other(format!("connect {addr}: {e}")))?;
            let _ = stream.set_nodelay(true);
            let mut config = WebSocketConfig::default();
            if let Some(n) = opts.read_buffer_size {
                config = config.read_buffer_size(n);
            }
            match tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await {
                Ok((ws, _resp)) => Ok(WsClient { ws, barrier_seq: 0 }),
                Err(tungstenite::Error::Http(resp)) => Err(ConnectError::Refused {
                    status: resp.status(),
                }),
                Err(e) => Err(ConnectError::Other(e.to_string())),
            }
        };
        tokio::time::timeout(WAIT, fut)
            .await
            .unwrap_or_else(|_| Err(ConnectError::Other("upgrade hung".into())))
    }

    /// Connects as `user` (bearer token) or panics: for suite cases where the
    /// connection itself is not under test.
    pub async fn connect_as(url: &str, user: &str) -> WsClient {
        match WsClient::connect(url, &ConnectOptions::bearer(user)).await {
            Ok(c) => c,
            Err(e) => panic!("connect {url} as {user}: {e}"),
        }
    }

    /// Sends a JSON value as a text frame.
    pub async fn send(&mut self, v: &Value) {
        self.send_text(v.to_string()).await;
    }

    /// Sends `v` and says whether the frame was written (false when the
    /// connection is gone or the write hung).
    pub async fn try_send(&mut self, v: &Value) -> bool {
        matches!(
            tokio::time::timeout(WAIT, self.ws.send(Message::text(v.to_string()))).await,
            Ok(Ok(()))
        )
    }

    /// Sends a text frame; a send error is ignored here and shows up on the next
    /// read as [`Incoming::Ended`].
    pub async fn send_text(&mut self, s: String) {
        let _ = tokio::time::timeout(WAIT, self.ws.send(Message::text(s))).await;
    }

    /// Sends a binary frame (see [`WsClient::send_text`] for errors).
    pub async fn send_binary(&mut self, b: Vec<u8>) {
        let _ = tokio::time::timeout(WAIT, self.ws.send(Message::binary(b))).await;
    }

    /// `{"topic":"subscribe","data":{"topic":topic}}`.
    pub async fn subscribe(&mut self, topic: &str) {
        self.send(&json!({"topic": "subscribe", "data": {"topic": topic}}))
            .await;
    }

    /// `{"topic":"unsubscribe","data":{"topic":topic}}`.
    pub async fn unsubscribe(&mut self, topic: &str) {
        self.send(&json!({"topic": "unsubscribe", "data": {"topic": topic}}))
            .await;
    }

    /// `{"topic":"publish","data":{"topic":topic,"data":data}}`.
    pub async fn publish(&mut self, topic: &str, data: Value) {
        self.send(&json!({"topic": "publish", "data": {"topic": topic, "data": data}}))
            .await;
    }

    /// Reads the next data or close event (pings and pongs are skipped).
    pub async fn recv(&mut self) -> Incoming {
        loop {
            let next = match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => return Incoming::TimedOut,
                Ok(None) => return Incoming::Ended("stream ended".into()),
                Ok(Some(Err(e))) => return Incoming::Ended(e.to_string()),
                Ok(Some(Ok(m))) => m,
            };
            match next {
                Message::Text(t) => return Incoming::Message(parse(t.as_bytes())),
                Message::Binary(b) => return Incoming::Message(parse(&b)),
                Message::Close(f) => return Incoming::Close(f.map(|f| u16::from(f.code))),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    /// Reads the next data or close event like [`recv`](Self::recv), but
    /// hands a data frame over as its raw text, unparsed (for load
    /// generators that read millions of frames and look at one field).
    pub async fn recv_raw(&mut self) -> Result<String, Incoming> {
        loop {
            let next = match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => return Err(Incoming::TimedOut),
                Ok(None) => return Err(Incoming::Ended("stream ended".into())),
                Ok(Some(Err(e))) => return Err(Incoming::Ended(e.to_string())),
                Ok(Some(Ok(m))) => m,
            };
            match next {
                Message::Text(t) => return Ok(t.as_str().to_owned()),
                Message::Binary(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
                Message::Close(f) => return Err(Incoming::Close(f.map(|f| u16::from(f.code)))),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    /// Reads the next message or panics with what came instead.
    pub async fn recv_message(&mut self) -> Value {
        match self.recv().await {
            Incoming::Message(v) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Reads messages until one has `topic`; returns it and the ones skipped.
    pub async fn recv_topic(&mut self, topic: &str) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let m = self.recv_message().await;
            if m["topic"] == topic {
                return (m, skipped);
            }
            skipped.push(m);
        }
    }

    /// Round-trips an application message through the profile's echo and returns
    /// every message that arrived before the echo.
    ///
    /// The server handles one connection's frames in order, so once the echo is
    /// back, every frame sent before it (a subscribe, say) has taken effect.
    pub async fn barrier(&mut self) -> Vec<Value> {
        self.barrier_seq += 1;
        let n = self.barrier_seq;
        self.send(&json!({"topic": "barrier", "data": {"n": n}}))
            .await;
        let mut before = Vec::new();
        loop {
            let m = self.recv_message().await;
            if m["topic"] == "echo"
                && m["data"]["topic"] == "barrier"
                && m["data"]["data"]["n"] == n
            {
                return before;
            }
            before.push(m);
        }
    }

    /// Reads until the connection closes; returns the close code (or `None` when
    /// it ended without a close frame) and the messages read before.
    pub async fn recv_until_closed(&mut self) -> (Option<u16>, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            match self.recv().await {
                Incoming::Message(m) => before.push(m),
                Incoming::Close(code) => return (code, before),
                Incoming::Ended(_) => return (None, before),
                Incoming::TimedOut => panic!(
                    "connection neither closed nor sent anything within {WAIT:?}; {} messages read",
                    before.len()
                ),
            }
        }
    }

    /// The underlying stream, for callers (the load generator) that drive it
    /// without per-message hang guards.
    pub fn into_stream(self) -> WebSocketStream<TcpStream> {
        self.ws
    }

    /// Starts a clean close (best effort).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(WAIT, self.ws.close(None)).await;
    }
}

fn header(v: &str) -> Result<HeaderValue, ConnectError> {
    HeaderValue::from_str(v).map_err(|e| ConnectError::Other(e.to_string()))
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| json!({"_raw": String::from_utf8_lossy(bytes)}))
}
