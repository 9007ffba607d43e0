//! The black-box conformance suite (testkit) against the tokio server,
//! configured with the suite's profile through the server's own hooks.

use std::net::SocketAddr;

use adapter_common::{
    AuthRejection, Command, Hooks, MessageCtx, Server, ServerConfig, ServerHandle,
};
use adapter_tokio::{TokioRuntime, serve};
use bytes::Bytes;
use http::request::Parts;
use live_core::handshake::OriginPolicy;
use serde_json::Value;
use sync_core::{KvApp, MemoryStore};
use testkit::conformance::{BoxFuture, ServerUnderTest};
use testkit::profile::{self, Profile};

/// The profile's hooks, each one a call to the profile's pure function.
struct ProfileHooks;

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

    fn on_message(&self, ctx: &mut MessageCtx<'_, String>) {
        let data: Value = serde_json::from_slice(ctx.data()).unwrap_or(Value::Null);
        let reply = profile::on_message_reply(ctx.topic(), &data);
        let _ = ctx.reply_raw(Bytes::from(reply.to_string()));
    }
}

/// The key-value app plus the profile's `put_many` mutator (unusable args are
/// a permanent error, as the profile says).
fn app() -> KvApp {
    KvApp::new().with(profile::PUT_MANY, |_state, mutation| {
        let args = mutation.args.clone().unwrap_or(Value::Null);
        let entries = profile::put_many_entries(&args).map_err(sync_core::AppError::invalid)?;
        Ok(entries
            .into_iter()
            .map(|(key, value)| KvApp::put_change(&key, value))
            .collect())
    })
}

fn config(p: &Profile) -> ServerConfig {
    let mut c = ServerConfig::default();
    c.ws_path = p.ws_path.into();
    c.sync_prefix = p.sync_prefix.into();
    let allowed = p.clone();
    c.origins =
        OriginPolicy::checker(move |origin| profile::origin_allowed(&allowed, Some(origin)));
    c.hub.limits.read_limit = p.read_limit;
    c.hub.limits.max_queued_messages = p.send_queue_messages;
    c.hub.limits.max_queued_bytes = p.send_queue_bytes;
    c.sync_limits.max_body_bytes = p.http_body_limit;
    c.sync_limits.max_push_batch = p.push_batch_max;
    c.sync_limits.default_pull_limit = p.pull_limit_default as u64;
    c.sync_limits.max_pull_limit = p.pull_limit_max as u64;
    c.engine.default_pull_limit = p.pull_limit_default as u64;
    c
}

struct Running {
    addr: SocketAddr,
    handle: ServerHandle<String>,
    accept: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl ServerUnderTest for Running {
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

async fn start(p: Profile) -> Box<dyn ServerUnderTest> {
    let server = Server::start(
        TokioRuntime::current(),
        config(&p),
        ProfileHooks,
        app(),
        MemoryStore::new(),
    )
    .await
    .expect("server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = server.handle().clone();
    let accept = tokio::spawn(serve(listener, server, std::future::pending()));
    Box::new(Running {
        addr,
        handle,
        accept,
    })
}

testkit::conformance_suite!(start);
