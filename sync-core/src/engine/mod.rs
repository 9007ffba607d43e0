//! The server engine: applies pushes through the [`App`], keeps per-scope
//! logs and dedupe records, answers pulls and snapshots from durable state,
//! and hands out numbered batches to persist (Ready/advance).

mod log;
mod push;
mod read;
mod scope;
mod types;

pub use types::{EngineConfig, EngineError, Output, Ready, RecoveryError, RequestId};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::app::App;
use crate::handler::{Response, SyncRequest};
use crate::protocol::{ErrorCode, MutationResult, PushResponse, Timestamp};
use crate::store::{Batch, Recovered, Trim};
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

    // ---- inputs ----

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

    /// Reports that persisting batch `number` failed and nothing of it was
    /// written. Its pushes and those of the open batch (which were applied on
    /// top of it) are answered with 500 `internal_error`, and every scope's
    /// working state returns to its durable state. Clients retry.
    pub fn handle_persist_failed(&mut self, number: u64) -> Result<(), EngineError> {
        self.check_outstanding(number)?;
        let Some((_, failed)) = self.outstanding.take() else {
            return Ok(());
        };
        let open = std::mem::take(&mut self.open);
        for pending in [failed, open] {
            for scope in &pending.touched {
                if let Some(s) = self.scopes.get_mut(scope) {
                    s.rollback();
                }
            }
            for (request_id, _) in pending.waiters {
                self.outputs.push_back(Output::Response {
                    request_id,
                    response: Response::error(
                        ErrorCode::Internal,
                        "storage failed; nothing was applied, retry",
                    ),
                });
            }
        }
        Ok(())
    }

    // ---- commands ----

    /// Acknowledges that batch `number` is durable: its changes and records
    /// become visible to pulls and snapshots, and its push answers and pokes
    /// are released to [`Engine::poll_output`].
    pub fn advance(&mut self, number: u64) -> Result<(), EngineError> {
        self.check_outstanding(number)?;
        let Some((_, done)) = self.outstanding.take() else {
            return Ok(());
        };
        let sealed = done.sealed.clone().unwrap_or_default();
        let batch = &*sealed;
        for t in &batch.trims {
            if let Some(s) = self.scopes.get_mut(&t.scope) {
                s.apply_trim(t);
            }
        }
        for e in &batch.changes {
            if let Some(s) = self.scopes.get_mut(&e.change.scope) {
                s.committed.absorb(&self.app, e);
                s.log.commit_to(e.change.cursor);
            }
        }
        for (i, c) in batch.clients.iter().enumerate() {
            if let Some(s) = self.scopes.get_mut(&c.scope) {
                match done.shared_results.get(i) {
                    Some(shared) => s.committed.record_client_shared(c, Arc::clone(shared)),
                    None => s.committed.record_client(c),
                }
            }
        }
        for r in &batch.ids {
            if let Some(s) = self.scopes.get_mut(&r.scope) {
                s.committed.record_id(r);
            }
        }
        for x in &batch.expired_ids {
            if let Some(s) = self.scopes.get_mut(&x.scope) {
                s.committed.expire_id(&x.id);
            }
        }
        for (request_id, results) in done.waiters {
            self.outputs.push_back(Output::Response {
                request_id,
                response: Response::ok(&PushResponse { results }),
            });
        }
        for scope in done.grown {
            let cursor = self.durable_head(&scope);
            self.outputs.push_back(Output::Poke { scope, cursor });
        }
        Ok(())
    }

    /// Trims `scope`'s log: drops every change with cursor `< before`, keeping
    /// the state at `before - 1` as the scope's base. Afterwards a pull from
    /// cursor `c` succeeds iff `c >= before - 1`; older cursors get 410 and
    /// must snapshot. Takes effect when its batch is durable. `before` may be
    /// at most the durable head + 1.
    pub fn trim(&mut self, scope: &str, before: u64) -> Result<(), EngineError> {
        let Some(s) = self.scopes.get(scope) else {
            return Err(EngineError::TrimBeyondHead {
                scope: scope.to_owned(),
                before,
                head: 0,
            });
        };
        let head = s.log.committed_head();
        if before > head + 1 {
            return Err(EngineError::TrimBeyondHead {
                scope: scope.to_owned(),
                before,
                head,
            });
        }
        let pending_trim = self
            .outstanding
            .iter()
            .map(|(_, p)| p)
            .chain([&self.open])
            .flat_map(|p| {
                p.batch
                    .trims
                    .iter()
                    .chain(p.sealed.iter().flat_map(|b| &b.trims))
            })
            .filter(|t| t.scope == scope)
            .map(|t| t.before)
            .max()
            .unwrap_or(0);
        if before <= s.log.first_kept().max(pending_trim) {
            return Ok(());
        }
        let base = s
            .base_at(&self.app, before)
            .map_err(|reason| EngineError::TrimFailed {
                scope: scope.to_owned(),
                reason,
            })?;
        self.open.batch.trims.push(Trim {
            scope: scope.to_owned(),
            before,
            base,
        });
        Ok(())
    }

    /// Replaces one scope's in-memory data with `records` freshly read from
    /// the store ([`crate::Store::load_scope`]). For drivers whose database is
    /// shared with other processes: reload a scope another writer changed.
    /// Refused while the scope has work that is not durable yet.
    pub fn reload_scope(
        &mut self,
        records: &crate::store::ScopeRecords,
    ) -> Result<(), EngineError> {
        let busy = self.open.touched.contains(&records.scope)
            || self
                .outstanding
                .as_ref()
                .is_some_and(|(_, p)| p.touched.contains(&records.scope));
        if busy {
            return Err(EngineError::ScopeBusy {
                scope: records.scope.clone(),
            });
        }
        let data = ScopeData::from_records(&self.app, records).map_err(|reason| {
            EngineError::BadRecords {
                scope: records.scope.clone(),
                reason,
            }
        })?;
        self.scopes.insert(records.scope.clone(), data);
        Ok(())
    }

    // ---- outputs ----

    /// Hands out the open batch for persisting, if there is something to
    /// persist or release and no batch is outstanding.
    pub fn poll_ready(&mut self) -> Option<Ready> {
        if !self.has_ready() {
            return None;
        }
        let number = self.next_number;
        self.next_number += 1;
        let mut pending = std::mem::take(&mut self.open);
        let persist = Arc::new(std::mem::take(&mut pending.batch));
        pending.sealed = Some(Arc::clone(&persist));
        self.outstanding = Some((number, pending));
        Some(Ready { number, persist })
    }

    /// The next response or poke to send.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn check_outstanding(&self, number: u64) -> Result<(), EngineError> {
        match &self.outstanding {
            Some((n, _)) if *n == number => Ok(()),
            other => Err(EngineError::NotOutstanding {
                given: number,
                outstanding: other.as_ref().map(|(n, _)| *n),
            }),
        }
    }
}
