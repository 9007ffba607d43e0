//! Ready/advance: handing out the open batch, making it visible once durable
//! (releasing push answers and pokes), or rolling back when it failed.

use std::sync::Arc;

use super::{Engine, EngineError, Output, Ready};
use crate::app::App;
use crate::handler::Response;
use crate::protocol::{ErrorCode, PushResponse};

impl<A: App> Engine<A> {
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
        // Once per scope (a rollback copies the scope's durable view), even
        // when both batches touched it.
        for scope in failed.touched.union(&open.touched) {
            if let Some(s) = self.scopes.get_mut(scope) {
                s.rollback();
            }
        }
        for pending in [failed, open] {
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
        for (i, r) in batch.ids.iter().enumerate() {
            if let Some(s) = self.scopes.get_mut(&r.scope) {
                match done.shared_ids.get(i) {
                    Some(shared) => s.committed.record_id_shared(Arc::clone(shared)),
                    None => s.committed.record_id(r),
                }
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
        self.apply_retention(batch);
        Ok(())
    }

    /// [`crate::EngineConfig::keep_changes`]: trims each scope that `batch`
    /// grew to twice the kept length back to it. A trim the application
    /// cannot compute a base for is skipped; the scope keeps its log and the
    /// next batch tries again.
    fn apply_retention(&mut self, batch: &crate::Batch) {
        let Some(keep) = self.config.keep_changes else {
            return;
        };
        let keep = keep.max(1);
        let grown: std::collections::BTreeSet<&str> = batch
            .changes
            .iter()
            .map(|e| e.change.scope.as_str())
            .collect();
        for scope in grown {
            let Some(s) = self.scopes.get(scope) else {
                continue;
            };
            let (first, head) = (s.log.first_kept(), s.log.committed_head());
            let kept = (head + 1).saturating_sub(first);
            if kept >= 2 * keep {
                let _ = self.trim(scope, head + 1 - keep);
            }
        }
    }

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

    pub(super) fn check_outstanding(&self, number: u64) -> Result<(), EngineError> {
        match &self.outstanding {
            Some((n, _)) if *n == number => Ok(()),
            other => Err(EngineError::NotOutstanding {
                given: number,
                outstanding: other.as_ref().map(|(n, _)| *n),
            }),
        }
    }
}
