//! One node as its loop runs it: a server core, its jobs run at once on a
//! `PgStore` of its own, and a session watching some scopes' pokes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use server_core::{
    AllowAll, Body, CoreConfig, Frame, HttpSync, OutFrame, Output, ServerCore, TimerReason, jobs,
};
use sync_core::testing::{Decisions, app};
use sync_core::{KvApp, RequestId, Store, Timestamp};
use sync_postgres::{PgOptions, PgStore};

use crate::common::Schema;
use crate::model::SCOPES;

type Core = ServerCore<String, AllowAll, KvApp>;

pub(crate) struct Node {
    /// Its number, in trace lines.
    pub(crate) n: usize,
    pub(crate) core: Core,
    store: PgStore,
    /// The scopes its session watches (`sync:<scope>`), each with the head
    /// it had when the session subscribed and the last cursor poked since.
    pub(crate) watched: BTreeMap<String, (u64, Option<u64>)>,
}

/// What a node did until it had nothing more to do.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    /// The answers to requests, by request.
    pub(crate) answers: BTreeMap<RequestId, (u16, Vec<u8>)>,
    /// The scopes its committed batches wrote: notices to the other nodes.
    pub(crate) committed: Vec<String>,
    /// Its pokes: scope and cursor.
    pub(crate) pokes: Vec<(String, u64)>,
    /// What happened, for the trace.
    pub(crate) lines: Vec<String>,
}

/// The URL node `n` of a cluster on `schema` connects with: `url` with
/// a name of the node's own as `application_name`, so [`cut`] finds its
/// sessions in `pg_stat_activity`.
pub(crate) fn node_url(url: &str, schema: &Schema, n: usize) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={}_node_{n}", schema.name)
}

/// Ends every session node `n` has (see [`node_url`]), as a restart of the
/// server, a failover or an operator would: nothing the node does
/// afterwards may be lost or doubled, and it comes back by itself.
pub(crate) fn cut(schema: &Schema, n: usize) {
    schema.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = '{}_node_{n}'",
        schema.name
    ));
}

impl Turn {
    /// Adds what the node did next.
    fn absorb(&mut self, more: Turn) {
        self.answers.extend(more.answers);
        self.committed.extend(more.committed);
        self.pokes.extend(more.pokes);
        self.lines.extend(more.lines);
    }
}

impl Node {
    /// Node `n`, recovered from the database; its session watches each
    /// scope by chance, from the head the node loaded.
    pub(crate) fn start(
        n: usize,
        (url, options): (&str, PgOptions),
        config: &CoreConfig,
        (now, wall): (Instant, Timestamp),
        rng: &mut Decisions,
    ) -> Node {
        // A lock kept by a node after its turn blocks the next node that
        // writes the scope; the store's timeout (5 s) makes that a failed
        // push instead of a hang.
        let mut store = PgStore::connect(url, options).expect("connect");
        let recovered = store.load().expect("load");
        let core =
            Core::new(now, wall, config.clone(), AllowAll, app(), recovered).expect("recover");
        let mut node = Node {
            n,
            core,
            store,
            watched: BTreeMap::new(),
        };
        let session = node.core.handle_open_local(now, "watcher".to_owned());
        for scope in SCOPES {
            if rng.chance(0.5) {
                let topic = sync_core::poke_topic(scope);
                node.core.subscribe(session, &topic).expect("subscribed");
                let loaded = node.core.engine().durable_head(scope);
                node.watched.insert(scope.to_owned(), (loaded, None));
            }
        }
        node
    }

    /// Carries out everything the core asks until it asks nothing more:
    /// its jobs run on the store at once.
    pub(crate) fn settle(&mut self, now: Instant) -> Turn {
        let n = self.n;
        let mut turn = Turn::default();
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Answer { request, response } => {
                    let answer = (response.status, response.body.to_vec());
                    let first = turn.answers.insert(request, answer);
                    assert!(first.is_none(), "{request:?} answered twice");
                }
                Output::Persist(job) => {
                    let result = jobs::persist(&mut self.store, &job);
                    let batch = &job.batch;
                    let scopes: Vec<String> = batch
                        .written_scopes()
                        .into_iter()
                        .map(str::to_owned)
                        .collect();
                    turn.lines.push(format!(
                        "node {n} batch {} of {} changes, {} trims, {} expiries on {scopes:?}: {:?}",
                        job.number,
                        batch.changes.len(),
                        batch.trims.len(),
                        batch.expired_ids.len(),
                        result.as_ref().map_err(|f| &f.message)
                    ));
                    if result.is_ok() {
                        turn.committed.extend(scopes);
                    }
                    let took = Duration::from_millis(1);
                    (self.core.handle_persisted(now, job.number, result, took))
                        .expect("the batch that is out");
                }
                Output::Reload(job) => {
                    let reloaded = jobs::reload(&mut self.store, &job);
                    turn.lines.push(format!(
                        "node {n} read {:?} (locking {:?}): {:?}",
                        job.scopes, job.lock, reloaded.error
                    ));
                    self.core.handle_reloaded(now, reloaded);
                }
                Output::Send { id, frame } => {
                    self.core.handle_flushed(now, id, 1, frame.len());
                    match frame {
                        OutFrame::Text(text) => {
                            let (scope, cursor) = self.poked(&text);
                            let line = format!("node {n} pokes {scope} at {cursor}");
                            turn.lines.push(line);
                            turn.pokes.push((scope, cursor));
                        }
                        // The session is alive: it is not closed as idle.
                        OutFrame::Ping(payload) => {
                            self.core.handle_frame(now, id, Frame::Pong(payload));
                        }
                        OutFrame::Pong(_) => {}
                    }
                }
                _ => {}
            }
        }
        assert!(
            !self.core.job_outstanding(),
            "node {n}: a job out after its turn"
        );
        turn
    }

    /// The session was poked with `text`: scope and cursor, never going
    /// back.
    fn poked(&mut self, text: &[u8]) -> (String, u64) {
        let message: Value = serde_json::from_slice(text).expect("a JSON message");
        let topic = message["topic"].as_str().expect("a topic");
        let scope = sync_core::scope_of_poke_topic(topic).expect("a poke");
        let cursor = message["data"]["cursor"].as_u64().expect("a cursor");
        let watched = self.watched.get_mut(scope).expect("a watched scope");
        let before = watched.1;
        assert!(
            before <= Some(cursor),
            "{scope} poked at {cursor} after {before:?}"
        );
        watched.1 = Some(cursor);
        (scope.to_owned(), cursor)
    }

    /// A request to the node's sync endpoint, answered within its turn.
    pub(crate) fn request(
        &mut self,
        now: Instant,
        path: &str,
        body: &Value,
    ) -> ((u16, Vec<u8>), Turn) {
        let bytes = serde_json::to_vec(body).expect("json");
        let user = format!("user{}", self.n);
        let request = HttpSync {
            method: "POST",
            path,
            query: "",
            body: Body::Read(&bytes),
        };
        let id = self.core.handle_http_sync(now, &user, request);
        let mut turn = self.settle(now);
        // A batch that met an outage again waits for a pause before it is
        // tried again: time jumps to the pause's end.
        while !turn.answers.contains_key(&id)
            && let Some((at, TimerReason::StoreRetry)) = self.core.poll_timeout()
        {
            turn.lines
                .push(format!("node {} waits for the store", self.n));
            self.core.handle_timeout(at);
            let more = self.settle(at);
            turn.absorb(more);
        }
        let answer = turn.answers.remove(&id);
        let answer = answer.unwrap_or_else(|| panic!("{path} {body} unanswered after its turn"));
        assert!(
            turn.answers.is_empty(),
            "answers nobody asked for: {turn:?}"
        );
        (answer, turn)
    }

    /// Deadlines that passed by `now` (reads to try again, heartbeats).
    pub(crate) fn tick(&mut self, now: Instant) -> Turn {
        let mut turn = Turn::default();
        while self.core.poll_timeout().is_some_and(|(at, _)| at <= now) {
            self.core.handle_timeout(now);
            let more = self.settle(now);
            assert!(
                more.answers.is_empty(),
                "answers nobody asked for: {more:?}"
            );
            turn.absorb(more);
        }
        turn
    }

    /// Another node committed to `notice` (`None`: anything may have
    /// changed).
    pub(crate) fn hear(&mut self, now: Instant, notice: Option<String>) -> Turn {
        self.core.handle_store_notice(now, notice);
        let turn = self.settle(now);
        assert!(
            turn.answers.is_empty(),
            "answers nobody asked for: {turn:?}"
        );
        turn
    }

    /// Every watched scope that moved past where it was when the session
    /// subscribed was poked with `head`.
    pub(crate) fn check_poked_heads(&self, head: impl Fn(&str) -> u64) {
        for (scope, (since, last)) in &self.watched {
            let head = head(scope);
            if head > *since {
                let n = self.n;
                assert_eq!(*last, Some(head), "node {n}: {scope} poked at its head");
            }
        }
    }
}
