//! The application hooks: authentication, scope and topic authorization,
//! on-message and on-close, in the shape a Rust application expects.

use std::future::Future;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use live_core::{CloseReason, Command, HubError, SessionId};
use server_core::{Policy, ServerCore};
use sync_core::App;

use crate::handle::ServerHandle;

/// A refusal of authentication: the HTTP status (401 unless said otherwise),
/// the JSON error code and a message, answered as `{"code":code,"error":message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    /// The status of the refusal (401 or 403 usually).
    pub status: StatusCode,
    /// Why, sent in the body `{"code":code,"error":message}`.
    pub message: String,
    /// The body's `code`: `unauthorized`, `token_expired` or `forbidden`.
    pub code: &'static str,
}

impl AuthRejection {
    /// A 401 refusal, code `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            code: "unauthorized",
        }
    }

    /// A 401 refusal of an expired credential, code `token_expired`: the
    /// client should get a fresh token and try again.
    pub fn token_expired(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            code: "token_expired",
        }
    }

    /// A 403 refusal, code `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            code: "forbidden",
        }
    }
}

/// Application hooks. Every method but [`Hooks::authenticate`] has a default:
/// everything allowed, messages ignored.
///
/// Authentication is async because it may need IO (a session store, a token
/// service); it runs in the HTTP request's task, so a slow lookup delays only
/// its own request. The authorization hooks are synchronous and run in the server
/// core: they decide from the authenticated value alone, which is what keeps
/// them cheap enough to run on every subscribe and every sync request. Derive
/// what they need (roles, tenant) in `authenticate`.
pub trait Hooks: Send + Sync + 'static {
    /// The value authentication gives a request or a WebSocket session.
    type User: Clone + Send + Sync + 'static;

    /// Authenticates an upgrade request or a sync HTTP request from its head
    /// (headers, query, cookies). A rejection answers the request with its
    /// status (401 by default) and no upgrade happens.
    fn authenticate(
        &self,
        request: &Parts,
    ) -> impl Future<Output = Result<Self::User, AuthRejection>> + Send;

    /// Maps a claimed sync scope to the authoritative one for `user`, or
    /// refuses it (`Err(reason)`: 403 `forbidden` for the whole request).
    /// Also decides subscriptions to `sync:<scope>`: allowed only when this
    /// returns `Ok` with the scope unchanged. Empty claims arrive as
    /// `_default`.
    fn authorize_scope(&self, user: &Self::User, scope: &str) -> Result<String, String> {
        let _ = user;
        Ok(scope.to_owned())
    }

    /// May `user` run the built-in `command` on this ordinary (non-`sync:`)
    /// topic? A refusal sends the client a `forbidden` error frame. Publishing
    /// on `sync:` topics is refused by the hub whatever this says.
    fn authorize_topic(&self, user: &Self::User, topic: &str, command: Command) -> bool {
        let _ = (user, topic, command);
        true
    }

    /// Verifies a token a session sent in-band
    /// (`{"topic":"refresh","data":{"token":T}}`, with
    /// [`crate::ServerConfig::token_refresh`]) and returns the value that
    /// replaces the session's. Runs in the server's driver, so it must be
    /// quick and do no IO (a signature check is fine). The default refuses:
    /// sessions keep the value they were opened with.
    fn refresh(&self, token: &str) -> Result<Self::User, AuthRejection> {
        let _ = token;
        Err(AuthRejection::unauthorized(
            "token refresh is not supported",
        ))
    }

    /// Who `user` is for per-client limits (sync requests per second), if
    /// the application knows; otherwise the client's IP address is used.
    fn client_key(&self, user: &Self::User) -> Option<String> {
        let _ = user;
        None
    }

    /// When `user`'s credential expires, if it does: a session still open
    /// then (not refreshed) is closed with 4001 `token expired`. Default:
    /// never.
    fn expires_at(&self, user: &Self::User) -> Option<SystemTime> {
        let _ = user;
        None
    }

    /// The user `user`'s sessions show in presence (`"user"` of `join`,
    /// `leave` and `presence` answers); `None` (the default) shows `null`.
    /// Runs in the server's driver: no IO.
    fn presence_user(&self, user: &Self::User) -> Option<String> {
        let _ = user;
        None
    }

    /// The history `topic` keeps (`HistoryLimits::new(size, ttl)`),
    /// deciding before the `--history` rules (`ServerConfig::hub.history`);
    /// `None` (the default) leaves it to them. Asked on every publish to a
    /// topic without a history running: no IO, keep it cheap.
    fn history(&self, topic: &str) -> Option<live_core::HistoryLimits> {
        let _ = topic;
        None
    }

    /// A message that is not a built-in command nor a `_sync` operation
    /// (mizu's `OnMessage`). Runs in the server's driver, so replies made through
    /// `ctx` are queued before the session's next frame is handled; for IO,
    /// clone [`MessageCtx::server`] into a task of your own.
    fn on_message(&self, ctx: &mut MessageCtx<'_, Self::User>) {
        let _ = ctx;
    }

    /// A session ended; `user` is `None` if it never authenticated.
    fn on_close(&self, session: SessionId, user: Option<&Self::User>, reason: &CloseReason) {
        let _ = (session, user, reason);
    }
}

/// Hooks that let everybody in: no authentication, every scope and topic
/// allowed, application messages ignored. (The stock server binary uses
/// [`crate::auth::TokenHooks`], which is this without `--jwt-secret`.)
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenHooks;

impl Hooks for OpenHooks {
    type User = ();

    async fn authenticate(&self, _request: &Parts) -> Result<(), AuthRejection> {
        Ok(())
    }
}

/// One application message and what [`Hooks::on_message`] may do about it,
/// applied at once, in order with the session's other frames.
pub struct MessageCtx<'a, U> {
    pub(crate) server_core: &'a mut dyn Commands<U>,
    pub(crate) server: &'a ServerHandle<U>,
    pub(crate) now: Instant,
    pub(crate) session: SessionId,
    pub(crate) user: &'a U,
    pub(crate) topic: &'a str,
    pub(crate) data: &'a Bytes,
}

impl<U: Send + 'static> MessageCtx<'_, U> {
    /// The sender.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The sender's authenticated value.
    pub fn user(&self) -> &U {
        self.user
    }

    /// The envelope's topic.
    pub fn topic(&self) -> &str {
        self.topic
    }

    /// The envelope's `data`, raw JSON as received (`null` when absent).
    pub fn data(&self) -> &Bytes {
        self.data
    }

    /// When the message was handled.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Sends `{"topic":topic,"data":data}` (data: one JSON value) to the sender.
    pub fn reply(&mut self, topic: &str, data: &[u8]) -> Result<bool, HubError> {
        self.server_core.send(self.session, topic, data)
    }

    /// Sends an already encoded envelope (valid JSON) to the sender.
    pub fn reply_raw(&mut self, frame: Bytes) -> Result<bool, HubError> {
        self.server_core.send_raw(self.session, frame)
    }

    /// Sends `{"topic":topic,"data":data}` to any session.
    pub fn send(&mut self, to: SessionId, topic: &str, data: &[u8]) -> Result<bool, HubError> {
        self.server_core.send(to, topic, data)
    }

    /// Publishes on a topic (any topic; the server is trusted), to local
    /// subscribers and through the broker (if any) to other nodes'.
    pub fn publish(&mut self, topic: &str, data: &[u8]) -> Result<usize, HubError> {
        self.server_core
            .publish(topic, Bytes::copy_from_slice(data))
    }

    /// Subscribes the sender to a topic.
    pub fn subscribe(&mut self, topic: &str) -> Result<bool, HubError> {
        self.server_core.subscribe(self.session, topic)
    }

    /// Closes the sender's session.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), HubError> {
        self.server_core.close(self.session, code, reason)
    }

    /// A handle for work that must wait on IO: clone it into a task.
    pub fn server(&self) -> &ServerHandle<U> {
        self.server
    }
}

/// The server core's commands an application message handler may use,
/// without naming the core's policy and app types.
pub(crate) trait Commands<U> {
    fn send(&mut self, to: SessionId, topic: &str, data: &[u8]) -> Result<bool, HubError>;
    fn send_raw(&mut self, to: SessionId, frame: Bytes) -> Result<bool, HubError>;
    fn publish(&mut self, topic: &str, data: Bytes) -> Result<usize, HubError>;
    fn subscribe(&mut self, id: SessionId, topic: &str) -> Result<bool, HubError>;
    fn close(&mut self, id: SessionId, code: u16, reason: &str) -> Result<(), HubError>;
}

impl<U, P, A> Commands<U> for ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    fn send(&mut self, to: SessionId, topic: &str, data: &[u8]) -> Result<bool, HubError> {
        ServerCore::send(self, to, topic, data)
    }

    fn send_raw(&mut self, to: SessionId, frame: Bytes) -> Result<bool, HubError> {
        ServerCore::send_raw(self, to, frame)
    }

    fn publish(&mut self, topic: &str, data: Bytes) -> Result<usize, HubError> {
        ServerCore::publish(self, topic, data)
    }

    fn subscribe(&mut self, id: SessionId, topic: &str) -> Result<bool, HubError> {
        ServerCore::subscribe(self, id, topic)
    }

    fn close(&mut self, id: SessionId, code: u16, reason: &str) -> Result<(), HubError> {
        ServerCore::close(self, id, code, reason)
    }
}

/// The application's authorization hooks as the server core's [`Policy`].
pub(crate) struct HookPolicy<H>(pub(crate) Arc<H>);

impl<H: Hooks> Policy<H::User> for HookPolicy<H> {
    fn authorize_scope(&self, user: &H::User, scope: &str) -> Result<String, String> {
        self.0.authorize_scope(user, scope)
    }

    fn authorize_topic(&self, user: &H::User, topic: &str, command: Command) -> bool {
        self.0.authorize_topic(user, topic, command)
    }

    fn expires_at(&self, user: &H::User) -> Option<sync_core::Timestamp> {
        let at = self.0.expires_at(user)?;
        let millis = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Some(sync_core::Timestamp::from_millis(
            u64::try_from(millis).unwrap_or(u64::MAX),
        ))
    }

    fn presence_user(&self, user: &H::User) -> Option<String> {
        self.0.presence_user(user)
    }

    fn history(&self, topic: &str) -> Option<live_core::HistoryLimits> {
        self.0.history(topic)
    }
}
