//! What the hub actor does differently when its store is shared with other
//! nodes (PostgreSQL): the engine assumes it is the only writer, so
//!
//! - a batch the store refuses as stale (another node wrote one of its
//!   scopes) is rolled back, the scopes are reloaded (already done by the
//!   persist job, under the store's lock), and the refused pushes are pushed
//!   again, a few times at most, instead of failing (then 503
//!   `unavailable`: nothing was applied, retry); the store's per-scope
//!   version check makes this sound: nothing is written from a stale view;
//! - when another node commits to a scope, the scope is reloaded *before*
//!   its poke goes to this node's subscribers, so a client never pulls from
//!   a node that has not seen what it was poked about. Reloads run only while
//!   no batch is being persisted, so they never race one;
//! - both reloads read only what was written after the records the engine
//!   holds ([`refresh_scope`], [`Engine::apply_scope_update`]), so their cost
//!   follows what other nodes wrote, not the length of the log; a scope is
//!   read whole only when that cannot be applied (another node trimmed it);
//! - a store that cannot be reached fails pushes at once with 503
//!   `unavailable` (nothing applied, retry), not with a hang.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use sync_core::store::{ScopeMark, ScopeUpdate, refresh_scope};
use sync_core::{App, Batch, Engine, Output, RequestId, Response, Store};

use crate::actor::{Actor, Failure, Input};
use crate::hooks::Hooks;
use crate::runtime::Runtime;

/// How often one push is pushed again after stale refusals.
const MAX_RETRIES: u8 = 8;

/// Scopes waiting to be reloaded.
#[derive(Debug, Default)]
pub(crate) struct Refresh {
    pending: BTreeSet<String>,
    /// Every scope (the change feed was interrupted).
    all: bool,
    /// A reload job is running.
    pub(crate) running: bool,
}

impl Refresh {
    pub(crate) fn want(&mut self, scope: Option<String>) {
        match scope {
            Some(scope) => {
                self.pending.insert(scope);
            }
            None => self.all = true,
        }
    }

    pub(crate) fn wanted(&self) -> bool {
        self.all || !self.pending.is_empty()
    }
}

/// A 503 `unavailable`: nothing was applied and a retry is right.
fn unavailable_response(error: String) -> Response {
    let body = serde_json::json!({"code": "unavailable", "error": error});
    Response {
        status: 503,
        body: Bytes::from(body.to_string()),
    }
}

/// The answer to a push whose store could not be reached.
fn unavailable(message: &str) -> Response {
    unavailable_response(format!(
        "storage unavailable ({message}); nothing was applied, retry"
    ))
}

/// The answer to a push refused as stale on every attempt: other nodes kept
/// winning the scope.
fn contended() -> Response {
    unavailable_response("other nodes kept writing this scope; nothing was applied, retry".into())
}

/// Where the engine's durable records end for every scope `batch` writes or
/// verifies: the scopes a store may refuse it for.
pub(crate) fn marks<P: App>(
    engine: &Engine<P>,
    batch: &Batch,
) -> BTreeMap<String, Option<ScopeMark>> {
    let scopes = batch
        .written_scopes()
        .into_iter()
        .chain(batch.verify.iter().map(String::as_str));
    scopes
        .map(|scope| (scope.to_owned(), engine.scope_mark(scope)))
        .collect()
}

impl<R, H, P, S> Actor<R, H, P, S>
where
    R: Runtime,
    H: Hooks,
    P: App + Send + 'static,
    P::State: Send,
    S: Store + Send + 'static,
{
    /// Rolls back a failed batch and answers or re-pushes its pushes.
    pub(crate) fn after_failed_batch(&mut self, number: u64, failure: Failure) {
        if let Err(e) = self.engine.handle_persist_failed(number) {
            tracing::error!(error = %e, "persist failure refused");
            return;
        }
        let stale = !failure.reloaded.is_empty();
        let mut again: Vec<RequestId> = Vec::new();
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Response { request_id, .. }
                    if stale
                        && self
                            .retry
                            .get(&request_id)
                            .is_some_and(|(_, n)| *n < MAX_RETRIES) =>
                {
                    again.push(request_id);
                }
                Output::Response { request_id, .. }
                    if stale && self.retry.contains_key(&request_id) =>
                {
                    self.on_output(Output::Response {
                        request_id,
                        response: contended(),
                    });
                }
                Output::Response { request_id, .. } if failure.unavailable => {
                    self.on_output(Output::Response {
                        request_id,
                        response: unavailable(&failure.message),
                    });
                }
                other => self.on_output(other),
            }
        }
        for update in &failure.reloaded {
            if let Err(e) = self.engine.apply_scope_update(update) {
                // The store believes we took these records: make it refuse
                // our next batch on the scope, which reloads it whole.
                tracing::error!(error = %e, scope = %update.scope(), "reloading a stale scope refused");
                self.forget.push(update.scope().to_owned());
            }
        }
        // Pushed again in their original order, under their original ids, so
        // their waiters get the new answers.
        for request_id in again {
            if let Some((mutations, attempts)) = self.retry.get_mut(&request_id) {
                *attempts += 1;
                let mutations = mutations.clone();
                self.engine
                    .handle_push(crate::actor::wall_clock(), request_id, mutations);
            }
        }
    }

    /// Reloads the wanted scopes on a blocking thread.
    pub(crate) fn start_refresh(&mut self) {
        let forget = std::mem::take(&mut self.forget);
        let mut scopes = std::mem::take(&mut self.refresh.pending);
        if std::mem::take(&mut self.refresh.all) {
            scopes.extend(self.engine.scopes().map(str::to_owned));
        }
        let Some(inbox) = self.weak.upgrade() else {
            return;
        };
        self.refresh.running = true;
        // No batch is outstanding while a refresh runs, so these marks hold
        // until its records are applied.
        let scopes: Vec<(String, Option<ScopeMark>)> = scopes
            .into_iter()
            .map(|scope| {
                let held = self.engine.scope_mark(&scope);
                (scope, held)
            })
            .collect();
        let store = self.store.clone();
        let job = self.rt.spawn_blocking(move || {
            let mut store = store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for scope in &forget {
                store.forget_scope(scope);
            }
            let mut loaded = Vec::with_capacity(scopes.len());
            for (scope, held) in scopes {
                match refresh_scope(&mut *store, &scope, held) {
                    Ok(update) => loaded.push(update),
                    Err(e) => return (loaded, Some(e.to_string())),
                }
            }
            (loaded, None)
        });
        self.rt.spawn(async move {
            let (loaded, error) = job
                .await
                .unwrap_or_else(|| (Vec::new(), Some("reload job panicked".into())));
            let _ = inbox.send(Input::Refreshed { loaded, error }).await;
        });
    }

    /// Installs reloaded scopes and pokes this node's subscribers of those
    /// that moved. A scope with local work in flight is skipped: its own
    /// batch will be refused as stale and reload it.
    pub(crate) fn finish_refresh(&mut self, loaded: Vec<ScopeUpdate>, error: Option<String>) {
        self.refresh.running = false;
        if let Some(e) = error {
            tracing::warn!(error = %e, "reloading scopes changed elsewhere failed");
        }
        for update in loaded {
            let scope = update.scope().to_owned();
            let before = self.engine.durable_head(&scope);
            match self.engine.apply_scope_update(&update) {
                Ok(()) => {
                    let cursor = self.engine.durable_head(&scope);
                    if cursor != before {
                        self.on_output(Output::Poke { scope, cursor });
                    }
                }
                Err(e) => {
                    // The store now believes we saw these records: make it
                    // refuse our next batch on the scope instead, which
                    // reloads it.
                    tracing::debug!(error = %e, "scope busy, not reloaded");
                    self.forget.push(scope);
                }
            }
        }
    }
}
