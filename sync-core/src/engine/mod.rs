//! The server engine: applies pushes through the [`App`], keeps per-scope
//! logs and dedupe records, answers pulls and snapshots from durable state,
//! and hands out numbered batches to persist (Ready/advance).

mod commit;
mod delta;
#[cfg(test)]
mod delta_tests;
mod log;
mod maintenance;
mod push;
mod read;
mod scope;
mod types;

pub use types::{EngineConfig, EngineError, Output, Ready, RecoveryError, RequestId};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::app::App;
use crate::handler::{Response, SyncRequest};
use crate::protocol::{MutationResult, Timestamp};
use crate::store::{Batch, Recovered};
use scope::ScopeData;

/// Work collected for one batch: the records to persist and who waits on them.
#[derive(Debug, Default)]
struct Pending {
    batch: Batch,
    /// The batch once handed out (shared with the driver).
    sealed: Option<Arc<Batch>>,
    /// The results of `batch.clients`, index for index, as the working view
    /// holds them; the committed view takes the same allocation on advance.
    shared_results: Vec<Arc<MutationResult>>,
    /// `batch.ids`, index for index, as the working view holds them; the
    /// committed view takes the same allocation on advance.
    shared_ids: Vec<Arc<crate::store::IdRecord>>,
    /// Push answers released when this batch is durable, in arrival order.
    waiters: Vec<(RequestId, Vec<MutationResult>)>,
    /// Scopes whose working view this batch changed.
    touched: BTreeSet<String>,
    /// Scopes that got new changes (poked after commit).
    grown: BTreeSet<String>,
}

impl Pending {
    fn is_idle(&self) -> bool {
        self.batch.is_empty() && self.waiters.is_empty()
    }

    /// Marks `scope`'s working view changed by this batch.
    fn touch(&mut self, scope: &str) {
        crate::keyed::insert(&mut self.touched, scope);
    }
}

/// The sans-IO sync server.
///
/// Call order (one driver task owns the engine):
/// 1. build with [`Engine::new`] or, at start, [`Engine::recover`] from
///    [`crate::Store::load`];
/// 2. feed requests: [`Engine::handle_request`] (or [`Engine::handle_push`],
///    [`Engine::handle_pull`], [`Engine::handle_snapshot`]). Pulls and
///    snapshots are answered at once from durable state; pushes are applied
///    to the working state and collected into the open batch;
/// 3. whenever the store is idle: [`Engine::poll_ready`] -> `Ready { number,
///    persist }`; persist it atomically (off the executor if blocking) while
///    further pushes collect into the next batch (group commit). Only one
///    batch is outstanding at a time;
/// 4. on success [`Engine::advance`]`(number)`; on failure
///    [`Engine::handle_persist_failed`]`(number)`: every push of that batch
///    and of the open batch gets a 500 and the working state is rolled back
///    to the durable one;
/// 5. drain [`Engine::poll_output`]: push responses by request id and pokes
///    for `sync:<scope>`. Nothing leaves the engine before it is durable.
///
/// Scopes are independent (own cursors, client sequences, state). The
/// scope of each mutation/request is taken as given: authorize it before,
/// see [`SyncRequest::authorize_scopes`].
#[derive(Debug)]
pub struct Engine<A: App> {
    app: A,
    config: EngineConfig,
    scopes: BTreeMap<String, ScopeData<A::State>>,
    open: Pending,
    outstanding: Option<(u64, Pending)>,
    next_number: u64,
    outputs: VecDeque<Output>,
}

impl<A: App> Engine<A> {
    /// An engine with no data.
    pub fn new(app: A, config: EngineConfig) -> Self {
        Engine {
            app,
            config,
            scopes: BTreeMap::new(),
            open: Pending::default(),
            outstanding: None,
            next_number: 1,
            outputs: VecDeque::new(),
        }
    }

    /// Rebuilds an engine from a store's records: the same answers as the
    /// engine that persisted them, for everything it had made durable.
    pub fn recover(
        app: A,
        config: EngineConfig,
        recovered: Recovered,
    ) -> Result<Self, RecoveryError> {
        let mut engine = Self::new(app, config);
        for records in &recovered.scopes {
            let data =
                ScopeData::from_records(&engine.app, records).map_err(|reason| RecoveryError {
                    scope: records.scope.clone(),
                    reason,
                })?;
            engine.scopes.insert(records.scope.clone(), data);
        }
        Ok(engine)
    }

    // ---- getters ----

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The durable head cursor of `scope` (0 if unknown).
    pub fn durable_head(&self, scope: &str) -> u64 {
        self.scopes.get(scope).map_or(0, |s| s.log.committed_head())
    }

    /// The durable state of `scope`, if it has any record.
    pub fn durable_state(&self, scope: &str) -> Option<&A::State> {
        self.scopes.get(scope).map(|s| &s.committed.state)
    }

    /// The names of all known scopes, in order.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.keys().map(String::as_str)
    }

    /// The number of the outstanding batch, if one is being persisted.
    pub fn outstanding(&self) -> Option<u64> {
        self.outstanding.as_ref().map(|(n, _)| *n)
    }

    /// True when [`Engine::poll_ready`] would return a batch.
    pub fn has_ready(&self) -> bool {
        self.outstanding.is_none() && !self.open.is_idle()
    }

    // ---- inputs (also: `handle_push` in push.rs, `handle_pull` and
    // `handle_snapshot` in read.rs, `handle_persist_failed` in commit.rs) ----

    /// Answers a parsed request. Returns `Some(response)` for pull and
    /// snapshot; `None` for a push, whose answer is released later as
    /// [`Output::Response`] with `request_id`. `wall` is the time written into
    /// the changes a push creates.
    pub fn handle_request(
        &mut self,
        wall: Timestamp,
        request_id: RequestId,
        request: SyncRequest,
    ) -> Option<Response> {
        match request {
            SyncRequest::Push(p) => {
                self.handle_push(wall, request_id, p.mutations);
                None
            }
            SyncRequest::Pull(p) => Some(self.handle_pull_encoded(&p)),
            SyncRequest::Snapshot(s) => Some(self.handle_snapshot_encoded(&s)),
        }
    }

    // ---- commands: `advance` in commit.rs; `trim`, `reload_scope` in
    // maintenance.rs; `apply_scope_delta` in delta.rs ----

    // ---- outputs (also: `poll_ready` in commit.rs) ----

    /// The next response or poke to send.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}
