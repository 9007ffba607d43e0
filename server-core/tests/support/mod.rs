//! A harness for transcript tests of the server core: one core over a
//! memory store, outputs rendered as short lines, store jobs run on demand,
//! time that moves only when a test moves it.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use live_core::{Command, Frame, HubConfig, SessionId};
use serde_json::Value;
use server_core::{
    Body, CoreConfig, HttpSync, Output, PersistFailure, PersistJob, Policy, ReloadJob, ServerCore,
};
use sync_core::{KvApp, MemoryStore, RequestId, Store, Timestamp};

/// Users named `deny` may use no scope; scope `secret` is nobody's; topic
/// `private` is closed to everybody but `admin`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestPolicy;

impl Policy<String> for TestPolicy {
    fn authorize_scope(&self, user: &String, scope: &str) -> Result<String, String> {
        if user == "deny" || scope == "secret" {
            Err(format!("{user} may not use {scope}"))
        } else {
            Ok(scope.to_owned())
        }
    }

    fn authorize_topic(&self, user: &String, topic: &str, _command: Command) -> bool {
        topic != "private" || user == "admin"
    }

    /// Presence shows the session's name.
    fn presence_user(&self, user: &String) -> Option<String> {
        Some(user.clone())
    }
}

pub type Core = ServerCore<String, TestPolicy, KvApp>;

pub const WALL: Timestamp = Timestamp(1_795_328_895_000);

pub struct Harness {
    pub core: Core,
    pub store: MemoryStore,
    pub now: Instant,
    /// Jobs handed out and not yet run.
    pub persist: Option<PersistJob>,
    pub reload: Option<ReloadJob>,
    /// Session names by id, for the transcript.
    pub names: BTreeMap<SessionId, String>,
    /// Requests by id, for the transcript.
    pub requests: BTreeMap<RequestId, String>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(CoreConfig::with_seed(7), MemoryStore::new())
    }

    pub fn with(mut config: CoreConfig, mut store: MemoryStore) -> Self {
        if config.hub == HubConfig::default() {
            config.hub.timers.ping_interval = None;
            config.hub.timers.idle_timeout = None;
        }
        let now = Instant::now();
        let recovered = store.load().expect("load");
        let core = ServerCore::new(now, WALL, config, TestPolicy, KvApp::new(), recovered)
            .expect("recover");
        Harness {
            core,
            store,
            now,
            persist: None,
            reload: None,
            names: BTreeMap::new(),
            requests: BTreeMap::new(),
        }
    }

    pub fn open(&mut self, name: &str) -> SessionId {
        let id = self.core.handle_open(self.now, name.to_owned());
        self.names.insert(id, name.to_owned());
        id
    }

    pub fn text(&mut self, id: SessionId, text: &str) {
        let frame = Frame::Text(Bytes::copy_from_slice(text.as_bytes()));
        self.core.handle_frame(self.now, id, frame);
    }

    pub fn subscribe(&mut self, id: SessionId, topic: &str) {
        self.text(
            id,
            &format!(r#"{{"topic":"subscribe","data":{{"topic":"{topic}"}}}}"#),
        );
    }

    pub fn http(
        &mut self,
        name: &str,
        user: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> RequestId {
        let request = HttpSync {
            method,
            path,
            query: "",
            body: Body::Read(body.as_bytes()),
        };
        let id = self
            .core
            .handle_http_sync(self.now, &user.to_owned(), request);
        self.requests.insert(id, name.to_owned());
        id
    }

    /// A push of `put key=value` mutations with ids `name:i`, as `user`.
    pub fn push(&mut self, name: &str, scope: &str, keys: &[&str]) -> RequestId {
        let mutations: Vec<Value> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                serde_json::json!({"id": format!("{name}:{i}"), "scope": scope, "name": "put",
                    "args": {"key": k, "value": i}})
            })
            .collect();
        let body = serde_json::json!({ "mutations": mutations }).to_string();
        self.http(name, "u", "POST", "/push", &body)
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The outputs as transcript lines; jobs are kept to be run later.
    pub fn drain(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(output) = self.core.poll_output() {
            if let Some(line) = self.render(output) {
                lines.push(line);
            }
        }
        lines
    }

    fn render(&mut self, output: Output<String>) -> Option<String> {
        let name = |names: &BTreeMap<SessionId, String>, id: &SessionId| {
            names.get(id).cloned().unwrap_or_else(|| format!("{id:?}"))
        };
        Some(match output {
            Output::Send { id, frame } => format!(
                "{} <- {}",
                name(&self.names, &id),
                String::from_utf8_lossy(frame.payload())
            ),
            Output::Close { id, code, reason } => {
                format!("{} <- close {code} {reason}", name(&self.names, &id))
            }
            Output::Closed { id, reason, .. } => {
                format!("{} closed {}", name(&self.names, &id), reason.code())
            }
            Output::Message { id, topic, data } => format!(
                "{} says {topic} {}",
                name(&self.names, &id),
                String::from_utf8_lossy(&data)
            ),
            Output::Answer { request, response } => format!(
                "{} answered {} {}",
                self.requests.get(&request).cloned().unwrap_or_default(),
                response.status,
                String::from_utf8_lossy(&response.body)
            ),
            Output::Persist(job) => {
                let line = format!("persist {}", job.number);
                self.persist = Some(job);
                line
            }
            Output::Reload(job) => {
                let (lock, read): (Vec<&str>, Vec<&str>) = job
                    .scopes
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .partition(|s| job.lock.iter().any(|l| l == s));
                let mut parts = Vec::new();
                if !lock.is_empty() {
                    parts.push(format!("lock {}", lock.join(",")));
                }
                if !read.is_empty() {
                    parts.push(format!("reload {}", read.join(",")));
                }
                let line = parts.join(", ");
                self.reload = Some(job);
                line
            }
            Output::Broker(command) => format!("broker {command:?}"),
            Output::Done { ticket, result } => format!("done {} {result:?}", ticket.0),
            Output::Notice(notice) => format!("notice {notice}"),
            Output::Stopped => "stopped".to_owned(),
            _ => return None,
        })
    }

    /// A node on a store shared with other nodes.
    pub fn shared() -> Self {
        let mut config = CoreConfig::with_seed(7);
        config.shared_store = true;
        Self::with(config, MemoryStore::new())
    }

    /// Two nodes on one shared store (each test moves the store between
    /// them as the nodes' writes would reach it).
    pub fn shared_pair() -> (Self, Self) {
        (Self::shared(), Self::shared())
    }

    /// A push of `keys` on `scope`, persisted; its transcript dropped.
    pub fn committed(&mut self, name: &str, scope: &str, keys: &[&str]) {
        self.push(name, scope, keys);
        self.drain();
        self.persist_ok();
        self.drain();
    }

    /// A session `name` watching `scope`'s pokes; its transcript dropped.
    pub fn watch(&mut self, name: &str, scope: &str) -> SessionId {
        let id = self.open(name);
        self.subscribe(id, &format!("sync:{scope}"));
        self.drain();
        id
    }

    /// Runs the outstanding persist job against the store and reports it.
    pub fn persist_ok(&mut self) {
        let job = self.persist.take().expect("a persist job is out");
        let result = server_core::jobs::persist(&mut self.store, &job);
        self.core
            .handle_persisted(self.now, job.number, result, Duration::ZERO)
            .expect("the batch is out");
    }

    /// Reports the outstanding persist job failed with `failure`, writing
    /// nothing.
    pub fn persist_failed(&mut self, failure: PersistFailure) {
        self.persist_failed_after(failure, Duration::ZERO);
    }

    /// Reports the outstanding persist job failed with `failure` `took`
    /// after it went out (the clock moves on by `took`), writing nothing.
    pub fn persist_failed_after(&mut self, failure: PersistFailure, took: Duration) {
        let job = self.persist.take().expect("a persist job is out");
        self.now += took;
        self.core
            .handle_persisted(self.now, job.number, Err(failure), took)
            .expect("the batch is out");
    }

    /// Runs the outstanding reload job against this node's own store.
    pub fn reload_own(&mut self) {
        let mut store = std::mem::take(&mut self.store);
        self.reload_from(&mut store);
        self.store = store;
    }

    /// Reports the outstanding reload job failed, reading nothing.
    pub fn reload_failed(&mut self) {
        self.reload.take().expect("a reload job is out");
        let failed = server_core::Reloaded {
            error: Some("connection lost".into()),
            ..server_core::Reloaded::default()
        };
        self.core.handle_reloaded(self.now, failed);
    }

    /// Reports the outstanding reload job met an outage of the store.
    pub fn reload_unavailable(&mut self) {
        self.reload.take().expect("a reload job is out");
        let failed = server_core::Reloaded {
            error: Some("the session ended".into()),
            unavailable: true,
            ..server_core::Reloaded::default()
        };
        self.core.handle_reloaded(self.now, failed);
    }

    /// Runs the outstanding reload job against `store` and reports it.
    pub fn reload_from(&mut self, store: &mut MemoryStore) {
        let job = self.reload.take().expect("a reload job is out");
        let reloaded = server_core::jobs::reload(store, &job);
        self.core.handle_reloaded(self.now, reloaded);
    }
}

/// The `status` of an answer line.
pub fn status(line: &str) -> Option<u16> {
    line.split(" answered ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}
