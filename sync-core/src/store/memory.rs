//! An in-memory [`Store`]: the reference implementation of the contract, used by
//! tests, the simulator and single-process demos without a database.

use std::collections::BTreeMap;

use super::{Batch, Recovered, ScopeRecords, Store, TrimBase};

/// Keeps records in ordered maps. `persist` applies the whole batch or (when a
/// failure is injected with [`MemoryStore::fail_next`]) nothing.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    scopes: BTreeMap<String, ScopeRecords>,
    fail_next: usize,
    persisted: u64,
}

/// The injected failure of a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected store failure")]
pub struct InjectedFailure;

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` calls of `persist` fail without writing anything.
    pub fn fail_next(&mut self, n: usize) {
        self.fail_next = n;
    }

    /// How many batches were made durable.
    pub fn persisted_batches(&self) -> u64 {
        self.persisted
    }

    fn scope_mut(&mut self, scope: &str) -> &mut ScopeRecords {
        self.scopes
            .entry(scope.to_owned())
            .or_insert_with(|| ScopeRecords {
                scope: scope.to_owned(),
                ..ScopeRecords::default()
            })
    }
}

impl Store for MemoryStore {
    type Error = InjectedFailure;

    fn persist(&mut self, batch: &Batch) -> Result<(), InjectedFailure> {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(InjectedFailure);
        }
        for t in &batch.trims {
            let s = self.scope_mut(&t.scope);
            if s.base.as_ref().is_some_and(|b| b.before >= t.before) {
                continue;
            }
            s.changes.retain(|e| e.change.cursor >= t.before);
            s.base = Some(TrimBase {
                before: t.before,
                base: t.base.clone(),
            });
        }
        for e in &batch.changes {
            self.scope_mut(&e.change.scope).changes.push(e.clone());
        }
        for c in &batch.clients {
            let s = self.scope_mut(&c.scope);
            s.clients
                .retain(|o| o.client_id != c.client_id || (o.seq >= c.keep_from && o.seq != c.seq));
            s.clients.push(c.clone());
        }
        for r in &batch.ids {
            let s = self.scope_mut(&r.scope);
            s.ids.retain(|o| o.id != r.id);
            s.ids.push(r.clone());
        }
        for x in &batch.expired_ids {
            self.scope_mut(&x.scope).ids.retain(|o| o.id != x.id);
        }
        self.persisted += 1;
        Ok(())
    }

    fn load(&mut self) -> Result<Recovered, InjectedFailure> {
        Ok(Recovered {
            scopes: self.scopes.values().cloned().collect(),
        })
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, InjectedFailure> {
        Ok(self.scopes.get(scope).cloned())
    }
}
