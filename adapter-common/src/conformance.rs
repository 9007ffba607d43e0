//! The conformance profile's server, shared by every adapter's conformance
//! test (feature `test-support`): the profile's hooks, its sync app and its
//! configuration, so each adapter's test only binds a listener and runs its
//! own accept loop. The outline (`adapter-tokio/tests/conformance.rs` and
//! `adapter-smol/tests/conformance.rs` are the compiled versions):
//!
//! ```text
//! async fn start(p: Profile) -> Box<dyn ServerUnderTest> {
//!     let server = conformance::start(MyRuntime::current(), &p).await;
//!     let listener = /* bind 127.0.0.1:0 */;
//!     let handle = server.handle().clone();
//!     let accepting = /* run the adapter's `serve(listener, server, pending())` */;
//!     Box::new(ProfileServer::new(addr, handle, accepting))
//! }
//! testkit::conformance_suite!(start);
//! ```

use std::net::SocketAddr;

use bytes::Bytes;
use http::request::Parts;
use live_core::handshake::OriginPolicy;
use serde_json::Value;
use sync_core::{KvApp, MemoryStore};
use testkit::conformance::{BoxFuture, ServerUnderTest};
use testkit::profile::{self, Profile};

use crate::{
    AuthRejection, Command, Hooks, MessageCtx, Runtime, Server, ServerConfig, ServerHandle,
};

/// The profile's hooks, each one a call to the profile's pure function.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProfileHooks;

impl Hooks for ProfileHooks {
    type User = String;

    async fn authenticate(&self, request: &Parts) -> Result<String, AuthRejection> {
        profile::authenticate(&request.headers, request.uri.query())
            .map_err(|why| AuthRejection::unauthorized(format!("{why:?}")))
    }

    fn authorize_scope(&self, user: &String, scope: &str) -> Result<String, String> {
        if profile::scope_allowed(user, scope) {
            Ok(scope.to_owned())
        } else {
            Err(format!("scope {scope:?} is not allowed for {user:?}"))
        }
    }

    fn authorize_topic(&self, user: &String, topic: &str, command: Command) -> bool {
        match command {
            Command::Subscribe => profile::may_subscribe(user, topic),
            Command::Publish => profile::may_publish(user, topic),
            Command::Unsubscribe => true,
        }
    }

    /// Presence shows the profile's user name.
    fn presence_user(&self, user: &String) -> Option<String> {
        Some(user.clone())
    }

    fn on_message(&self, ctx: &mut MessageCtx<'_, String>) {
        let data: Value = serde_json::from_slice(ctx.data()).unwrap_or(Value::Null);
        let reply = profile::on_message_reply(ctx.topic(), &data);
        let _ = ctx.reply_raw(Bytes::from(reply.to_string()));
    }
}

/// The key-value app plus the profile's `put_many` mutator (unusable args are
/// a permanent error, as the profile says).
pub fn app() -> KvApp {
    KvApp::new().with(profile::PUT_MANY, |_state, mutation| {
        let args = mutation.args.clone().unwrap_or(Value::Null);
        let entries = profile::put_many_entries(&args).map_err(sync_core::AppError::invalid)?;
        Ok(entries
            .into_iter()
            .map(|(key, value)| KvApp::put_change(&key, value))
            .collect())
    })
}

/// The server configuration the profile describes (paths, origins, limits).
pub fn config(p: &Profile) -> ServerConfig {
    let allowed = p.clone();
    let mut c = ServerConfig {
        ws_path: p.ws_path.into(),
        sync_prefix: p.sync_prefix.into(),
        origins: OriginPolicy::checker(move |origin| {
            profile::origin_allowed(&allowed, Some(origin))
        }),
        ..ServerConfig::default()
    };
    c.hub.limits.read_limit = p.read_limit;
    c.hub.limits.max_queued_messages = p.send_queue_messages;
    c.hub.limits.max_queued_bytes = p.send_queue_bytes;
    c.sync_limits.max_body_bytes = p.http_body_limit;
    c.sync_limits.max_push_batch = p.push_batch_max;
    c.sync_limits.default_pull_limit = p.pull_limit_default as u64;
    c.sync_limits.max_pull_limit = p.pull_limit_max as u64;
    c.engine.default_pull_limit = p.pull_limit_default as u64;
    c.hub.history = p
        .history
        .iter()
        .map(|&(pattern, size)| {
            live_core::HistoryRule::new(pattern, live_core::HistoryLimits::new(size, None))
        })
        .collect();
    c
}

/// Starts the profile's server (hooks, app, configuration, memory store) on
/// `rt`. Panics if it cannot start: this is test support.
pub async fn start<R: Runtime>(rt: R, p: &Profile) -> Server<R, ProfileHooks> {
    Server::start(rt, config(p), ProfileHooks, app(), MemoryStore::new())
        .await
        .expect("the conformance server starts")
}

/// A profile server being served on `addr`, as the suite sees it. Dropping it
/// drops `accepting`, the adapter's guard that stops its accept loop (an
/// aborting task handle, executor threads being stopped, ...).
pub struct ProfileServer<G: Send + Sync> {
    addr: SocketAddr,
    handle: ServerHandle<String>,
    _accepting: G,
}

impl<G: Send + Sync> ProfileServer<G> {
    /// The server reachable at `addr`, trimmed through `handle`, kept serving
    /// while `accepting` lives.
    pub fn new(addr: SocketAddr, handle: ServerHandle<String>, accepting: G) -> Self {
        Self {
            addr,
            handle,
            _accepting: accepting,
        }
    }
}

impl<G: Send + Sync> ProfileServer<G> {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl<G: Send + Sync> ServerUnderTest for ProfileServer<G> {
    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    fn http_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn trim<'a>(&'a self, scope: &'a str, before: u64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.handle
                .trim(scope, before)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
