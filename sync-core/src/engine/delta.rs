//! Bringing a scope up to date from what another writer added to it
//! ([`ScopeDelta`]), instead of rebuilding it from every record: the new
//! changes are absorbed in cursor order, the new client and id records are
//! merged, exactly as a rebuild from the merged records would hold them.

use std::sync::Arc;

use super::scope::ScopeData;
use super::{Engine, EngineError};
use crate::app::App;
use crate::store::{ClientRecord, ScopeDelta, ScopeMark, ScopeUpdate};

impl<A: App> Engine<A> {
    /// Where the durable records held of `scope` end, to ask a store for
    /// what was written after them ([`crate::store::refresh_scope`]). `None`
    /// when the scope is unknown.
    pub fn scope_mark(&self, scope: &str) -> Option<ScopeMark> {
        self.scopes.get(scope).map(|s| ScopeMark {
            head: s.log.committed_head(),
            first_kept: s.log.first_kept(),
        })
    }

    /// Applies what a store handed back for one scope: rebuilds it from
    /// [`ScopeUpdate::Full`] records ([`Engine::reload_scope`]) or applies a
    /// [`ScopeUpdate::Delta`] ([`Engine::apply_scope_delta`]).
    pub fn apply_scope_update(&mut self, update: &ScopeUpdate) -> Result<(), EngineError> {
        match update {
            ScopeUpdate::Full(records) => self.reload_scope(records),
            ScopeUpdate::Delta(delta) => self.apply_scope_delta(delta),
        }
    }

    /// Adds what another writer wrote to a scope after what this engine
    /// holds: afterwards the scope answers exactly as if it had been
    /// rebuilt from all its records ([`Engine::reload_scope`]), at the cost
    /// of the delta alone. Refused, changing nothing, while the scope has
    /// work that is not durable yet ([`EngineError::ScopeBusy`], as for a
    /// rebuild), and when the delta does not follow the held records
    /// ([`EngineError::DeltaMismatch`]: another writer trimmed the log, the
    /// changes leave a gap, or the delta was read after another mark); the
    /// driver then loads the scope whole.
    pub fn apply_scope_delta(&mut self, delta: &ScopeDelta) -> Result<(), EngineError> {
        self.refuse_busy(&delta.scope)?;
        let held = self.scope_mark(&delta.scope).unwrap_or_default();
        delta
            .follows(held)
            .map_err(|reason| EngineError::DeltaMismatch {
                scope: delta.scope.clone(),
                reason,
            })?;
        let s = self
            .scopes
            .entry(delta.scope.clone())
            .or_insert_with(ScopeData::new);
        s.apply_delta(&self.app, delta);
        Ok(())
    }

    /// Whether `scope` has work that is not durable yet (in the open batch
    /// or the one out): a reload or delta of it would be refused
    /// ([`EngineError::ScopeBusy`]) until that work is persisted or rolled
    /// back.
    pub fn scope_busy(&self, scope: &str) -> bool {
        self.open.touched.contains(scope)
            || self
                .outstanding
                .as_ref()
                .is_some_and(|(_, p)| p.touched.contains(scope))
    }

    /// Refuses to replace a scope under work that is not durable.
    pub(super) fn refuse_busy(&self, scope: &str) -> Result<(), EngineError> {
        if self.scope_busy(scope) {
            return Err(EngineError::ScopeBusy {
                scope: scope.to_owned(),
            });
        }
        Ok(())
    }
}

impl<S: Clone + Default> ScopeData<S> {
    /// Adds a delta that follows this scope's durable records to both views
    /// (they are equal: the scope has no work in flight). The order of a
    /// rebuild: changes, then client records by client and sequence, then
    /// id records.
    fn apply_delta<A: App<State = S>>(&mut self, app: &A, delta: &ScopeDelta) {
        for e in &delta.changes {
            self.committed.absorb(app, e);
            self.working.absorb(app, e);
            self.log.append(e.clone());
        }
        self.log.commit_to(self.log.working_head());
        let mut clients: Vec<&ClientRecord> = delta.clients.iter().collect();
        clients.sort_by_key(|c| (c.client_id.as_str(), c.seq));
        for c in clients {
            let shared = Arc::new(c.result.clone());
            self.committed.record_client_shared(c, Arc::clone(&shared));
            self.working.record_client_shared(c, shared);
        }
        if delta.ids_complete {
            for view in [&mut self.committed, &mut self.working] {
                view.ids.clear();
                view.ids_by_time.clear();
            }
        }
        for r in &delta.ids {
            let shared = Arc::new(r.clone());
            self.committed.record_id_shared(Arc::clone(&shared));
            self.working.record_id_shared(shared);
        }
    }
}
