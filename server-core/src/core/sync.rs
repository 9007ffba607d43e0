//! Sync requests over HTTP and over the WebSocket, and the engine's outputs:
//! answers released once durable, pokes after commit.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use live_core::SessionId;
use serde_json::Value;
use sync_core::handler::{WsRequest, encode_ws_response, parse_http, parse_ws_request};
use sync_core::{App, ErrorCode, Output as EngineOutput, RequestId, Response, SyncRequest};

use super::{Deferred, Retry, ServerCore, Waiter};
use crate::output::Output;
use crate::policy::Policy;
use crate::request::{Body, HttpSync};

impl<U, P, A> ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    /// A sync request over HTTP from `user`: parsed, its scopes authorized,
    /// run. The answer comes as [`Output::Answer`] with the returned id: at
    /// once for pulls, snapshots and refusals, once durable for pushes.
    pub fn handle_http_sync(&mut self, now: Instant, user: &U, request: HttpSync<'_>) -> RequestId {
        self.at(now);
        let id = self.request_id();
        let limits = &self.config.sync_limits;
        let parsed = match request.body {
            Body::Read(body) => {
                parse_http(request.method, request.path, request.query, body, limits)
            }
            Body::TooLarge { limit } => Err(Response::error(
                ErrorCode::PayloadTooLarge,
                format!("body exceeds {limit} bytes"),
            )),
            Body::Unreadable { message } => Err(Response::error(
                ErrorCode::Invalid,
                format!("reading the body failed: {message}"),
            )),
        };
        let answered = parsed
            .and_then(|mut r| {
                let policy = &*self.policy;
                r.authorize_scopes(|claimed| policy.authorize_scope(user, claimed))?;
                Ok(r)
            })
            .map_or_else(Some, |r| self.run_sync(id, r));
        match answered {
            Some(response) => self.answer(id, Waiter::Http, response),
            None => {
                self.waiters.insert(id, Waiter::Http);
            }
        }
        self.pump();
        id
    }

    /// A sync request from trusted server-side code, already parsed and
    /// authorized. Answered as [`Output::Answer`] with the returned id.
    pub fn handle_sync_request(&mut self, now: Instant, request: SyncRequest) -> RequestId {
        self.at(now);
        let id = self.request_id();
        match self.run_sync(id, request) {
            Some(response) => self.answer(id, Waiter::Http, response),
            None => {
                self.waiters.insert(id, Waiter::Http);
            }
        }
        self.pump();
        id
    }

    /// A `_sync` message from a session: same parsing, authorization and
    /// engine as HTTP, answered to the sender on `_sync`.
    pub(super) fn ws_sync(&mut self, session: SessionId, data: &Bytes) {
        let Some(user) = self.hub.auth(session).cloned() else {
            return;
        };
        let value: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
        let id = self.request_id();
        let (rid, answered) = match parse_ws_request(&value, data.len(), &self.config.sync_limits) {
            Err((rid, refused)) => (rid, Some(refused)),
            Ok(WsRequest { rid, mut request }) => {
                let policy = &*self.policy;
                match request.authorize_scopes(|claimed| policy.authorize_scope(&user, claimed)) {
                    Err(refused) => (rid, Some(refused)),
                    Ok(()) => (rid, self.run_sync(id, request)),
                }
            }
        };
        let waiter = Waiter::Ws { session, rid };
        match answered {
            Some(response) => self.answer(id, waiter, response),
            None => {
                self.waiters.insert(id, waiter);
            }
        }
    }

    /// Hands an authorized request to the engine; `Some` when answered at
    /// once. During a shutdown nothing new is taken (503).
    fn run_sync(&mut self, id: RequestId, request: SyncRequest) -> Option<Response> {
        match &request {
            SyncRequest::Push(p) => {
                self.metrics.pushes += 1;
                self.metrics.mutations += p.mutations.len() as u64;
            }
            SyncRequest::Pull(_) => self.metrics.pulls += 1,
            SyncRequest::Snapshot(_) => self.metrics.snapshots += 1,
        }
        if self.shutting_down {
            return Some(Response::error(
                ErrorCode::Unavailable,
                "the server is shutting down; nothing was applied, retry",
            ));
        }
        let wall = self.wall_now();
        if let (true, SyncRequest::Push(p)) = (self.config.shared_store, &request) {
            let retry = Retry {
                mutations: p.mutations.clone(),
                attempts: 0,
                wall,
            };
            self.retry.insert(id, retry);
        }
        if request.scopes().any(|s| {
            self.waits_for(&request, s, &self.deferred) || self.pulls_past_head(&request, s)
        }) {
            let unread: Vec<String> = request
                .scopes()
                .filter(|s| self.reads_first(&request, s) || self.pulls_past_head(&request, s))
                .map(str::to_owned)
                .collect();
            self.wanted.scopes.extend(unread);
            self.deferred.push_back(Deferred { id, request, wall });
            return None;
        }
        self.engine_request(Deferred { id, request, wall })
    }

    /// Whether `request` must wait on account of `scope` before the engine
    /// sees it: the scope must be read first, or locked first, or its
    /// reload is out, or a request `ahead` of it names it (requests on a
    /// scope keep their order).
    fn waits_for(&self, request: &SyncRequest, scope: &str, ahead: &VecDeque<Deferred>) -> bool {
        self.reads_first(request, scope)
            || self.locks_first(request, scope)
            || self.reload_scopes.contains(scope)
            || ahead.iter().any(|d| d.names(scope))
    }

    /// Whether `request` must wait for `scope` to be read before the engine
    /// sees it: a pull or snapshot, on a shared store, of a scope this node
    /// holds nothing of (other nodes may have written it: this node does
    /// not follow scopes it does not hold), or of one another node wrote
    /// since this node read it. A push needs no such read: it waits for a
    /// locking read instead, or if the scope was written elsewhere
    /// unannounced, the store refuses its batch and hands back the scope.
    fn reads_first(&self, request: &SyncRequest, scope: &str) -> bool {
        self.config.shared_store
            && !matches!(request, SyncRequest::Push(_))
            && (self.engine.scope_mark(scope).is_none() || self.wanted.later.contains(scope))
    }

    /// Whether `request` is a pull, on a shared store, from a cursor past
    /// what this node holds of `scope`: another node wrote past it (the
    /// client pushed or pulled there, and this node has not heard of it
    /// yet), so the scope is read once before the pull is answered. Only a
    /// cursor still ahead after that read is refused (410), as on one node;
    /// if the read fails, the pull is answered 503 like every request whose
    /// read failed.
    fn pulls_past_head(&self, request: &SyncRequest, scope: &str) -> bool {
        self.config.shared_store
            && matches!(request, SyncRequest::Pull(p) if p.cursor > self.engine.durable_head(scope))
    }

    /// Whether `request` must wait for a locking read of `scope` before the
    /// engine sees it: a push on a scope other nodes write too, or wrote
    /// since this node read it, unless the store holds it locked for the
    /// next batch. Computed on what every other node wrote, under the lock,
    /// its batch is not refused as stale; applied before, it would be
    /// refused, and the engine would have to throw away its working state of
    /// the scope (a copy of the whole state) to compute it again.
    fn locks_first(&self, request: &SyncRequest, scope: &str) -> bool {
        matches!(request, SyncRequest::Push(_))
            && (self.contended.contains_key(scope) || self.wanted.later.contains(scope))
            && !self.locked.contains(scope)
    }

    /// Hands a request to the engine; `Some` when answered at once (then
    /// it will never need pushing again).
    fn engine_request(&mut self, d: Deferred) -> Option<Response> {
        let answered = self.engine.handle_request(d.wall, d.id, d.request);
        if answered.is_some() {
            self.retry.remove(&d.id);
        }
        answered
    }

    /// After a reload: hands the engine, in the order they arrived, the
    /// waiting requests whose scopes are all read now, and answers those it
    /// answers at once. Requests waiting for a scope in `unread` (whose
    /// reading failed) are answered 503 instead: nothing was applied, they
    /// may retry.
    pub(super) fn resume_deferred(&mut self, unread: &BTreeSet<String>) {
        let mut still: VecDeque<Deferred> = VecDeque::new();
        for d in std::mem::take(&mut self.deferred) {
            let id = d.id;
            let blocked = d
                .request
                .scopes()
                .any(|s| self.waits_for(&d.request, s, &still));
            // A pull past this node's head waited for a read that failed:
            // answered by the engine it would be refused as too old.
            let past_head = (d.request.scopes())
                .any(|s| unread.contains(s) && self.pulls_past_head(&d.request, s));
            let response = if !blocked && !past_head {
                self.engine_request(d)
            } else if d.request.scopes().any(|s| unread.contains(s)) {
                self.retry.remove(&id);
                Some(Response::error(
                    ErrorCode::Unavailable,
                    "storage unavailable (the scope could not be read); nothing was applied, retry",
                ))
            } else {
                still.push_back(d);
                continue;
            };
            if let Some(response) = response
                && let Some(waiter) = self.waiters.remove(&id)
            {
                self.answer(id, waiter, response);
            }
        }
        self.deferred = still;
    }

    /// Sends `response` to whoever waits for request `id`.
    fn answer(&mut self, id: RequestId, waiter: Waiter, response: Response) {
        if !response.is_success() {
            self.metrics.errors += 1;
        }
        match waiter {
            Waiter::Http => self.emit(Output::Answer {
                request: id,
                response,
            }),
            Waiter::Ws { session, rid } => {
                let frame = Bytes::from(encode_ws_response(&rid, &response));
                // A session gone meanwhile simply misses its answer.
                let _ = self.hub.send_raw(session, frame);
            }
        }
    }

    pub(super) fn on_engine_output(&mut self, output: EngineOutput) {
        match output {
            EngineOutput::Poke { .. } => {
                if let Some((topic, data)) = output.poke_message() {
                    self.metrics.pokes += 1;
                    // A `sync:` topic and a JSON object: the hub cannot refuse it.
                    let _ = self.hub.publish_at(self.now, &topic, data.as_bytes());
                }
            }
            EngineOutput::Response {
                request_id,
                response,
            } => {
                self.retry.remove(&request_id);
                if let Some(waiter) = self.waiters.remove(&request_id) {
                    self.answer(request_id, waiter, response);
                }
            }
        }
    }
}
