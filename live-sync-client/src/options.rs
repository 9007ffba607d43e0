//! Connection options: authentication, extra handshake headers, reconnect
//! policy and buffer sizes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::ClientError;

/// How to reconnect after a connection is lost or an attempt fails.
///
/// The delay after the `n`-th consecutive failure (0-based) is a uniformly
/// random point in `[0, d]`, `d = min(max, base * 2^n)` ("full jitter"): even
/// the first retry lands anywhere in `[0, base]`, so the clients of a
/// restarted server come back spread over that window instead of all at the
/// same instant, and each later window doubles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The first delay's upper bound: the window the first retry is spread
    /// over. Default 1 s.
    pub base: Duration,
    /// The largest delay. Default 30 s.
    pub max: Duration,
    /// Seed of the jitter; `None` draws one per client. Tests set it so the
    /// delays are reproducible.
    pub seed: Option<u64>,
    /// A connection that stayed up this long counts as healthy: the next
    /// failure starts again from `base`. A server that accepts and then drops
    /// every connection keeps backing off instead. Default 10 s.
    pub stable_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
            seed: None,
            stable_after: Duration::from_secs(10),
        }
    }
}

type TokenFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// Produces the bearer token for each connection attempt, so a token that
/// expires can be refreshed (possibly over the network) before a reconnect.
#[derive(Clone)]
pub struct TokenProvider(Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl TokenProvider {
    /// Wraps an async function returning the token (`None`: send none).
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        TokenProvider(Arc::new(move || Box::pin(f())))
    }

    /// The token for the next attempt.
    pub(crate) async fn token(&self) -> Option<String> {
        (self.0)().await
    }
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenProvider")
    }
}

/// Options of [`LiveClient::connect`](super::LiveClient::connect).
///
/// Its `Debug` output hides the token and header values (they are
/// credentials more often than not).
#[derive(Clone)]
pub struct LiveOptions {
    /// Sent as `Authorization: Bearer <token>` on every handshake.
    pub token: Option<String>,
    /// Asked for the token before every attempt; takes precedence over
    /// `token`. While connected, it is asked again shortly before the
    /// token's `exp` (a JWT's) and when the server says `token_expired`, and
    /// the new token is sent in-band (`{"topic":"refresh","data":{"token":T}}`)
    /// without reconnecting.
    pub token_provider: Option<TokenProvider>,
    /// Extra headers for every handshake (cookies, `Origin`, custom auth).
    pub headers: HeaderMap,
    /// Reconnect delays.
    pub reconnect: ReconnectPolicy,
    /// Events held for the application. When it is full, the client stops
    /// reading the socket until there is room for the next message
    /// (backpressure reaches the server, which may then close the connection
    /// as a slow consumer), and connection-state events are dropped rather
    /// than waited for. Default 1024.
    pub event_buffer: usize,
    /// Commands (subscribe, publish, ...) queued for the connection task
    /// before the calls wait. Default 1024.
    pub command_buffer: usize,
    /// A connection attempt (TCP + WebSocket handshake) taking longer is
    /// abandoned. Default 10 s.
    pub connect_timeout: Duration,
    /// How often to ping the server; a connection silent for two intervals is
    /// treated as lost (the only way to notice a peer that vanished without
    /// closing). `None` disables it. Default 30 s.
    pub ping_interval: Option<Duration>,
    /// Largest message accepted from the server. Default 16 MiB.
    pub max_message_size: usize,
    /// Remember each topic's [`Position`](crate::Position) and resume from
    /// it on every reconnect: subscribes carry `"history":true` and, once a
    /// position is known, `since`; deliveries already read are dropped.
    /// `false` sends plain mizu subscribes. Default true.
    pub resume: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            token: None,
            token_provider: None,
            headers: HeaderMap::new(),
            reconnect: ReconnectPolicy::default(),
            event_buffer: 1024,
            command_buffer: 1024,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(30)),
            max_message_size: 16 << 20,
            resume: true,
        }
    }
}

impl std::fmt::Debug for LiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_provider", &self.token_provider)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("reconnect", &self.reconnect)
            .field("event_buffer", &self.event_buffer)
            .field("command_buffer", &self.command_buffer)
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("max_message_size", &self.max_message_size)
            .field("resume", &self.resume)
            .finish()
    }
}

impl LiveOptions {
    /// Sets the bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets a function asked for the token before every attempt.
    pub fn token_provider<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.token_provider = Some(TokenProvider::new(f));
        self
    }

    /// The same as [`LiveOptions::token_provider`], under the name the
    /// browser client uses (`getToken`): a fresh token before every attempt,
    /// before the current one expires and after the server says it expired.
    pub fn get_token<F, Fut>(self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.token_provider(f)
    }

    /// Adds a handshake header.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, ClientError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ClientError::InvalidHeader(format!("{name:?}: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| ClientError::InvalidHeader(format!("{name}: {e}")))?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// Sets the reconnect jitter seed (reproducible delays).
    pub fn seed(mut self, seed: u64) -> Self {
        self.reconnect.seed = Some(seed);
        self
    }

    /// Turns resuming from each topic's last position on or off (default on).
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Sets the reconnect delay bounds.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.reconnect.base = base;
        self.reconnect.max = max;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_credentials() {
        let o = LiveOptions::default()
            .token("s3cret")
            .header("cookie", "session=hunter2")
            .unwrap();
        let shown = format!("{o:?}");
        assert!(shown.contains("cookie"), "{shown}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
