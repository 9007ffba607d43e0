//! An in-memory [`Store`]: the reference implementation of the contract, used by
//! tests, the simulator and single-process demos without a database.

use std::collections::{BTreeMap, HashMap};

use crate::keyed;

use super::{Batch, ClientRecord, IdRecord, Recovered, ScopeRecords, Store, TrimBase};

/// Keeps records in ordered maps. `persist` applies the whole batch or (when a
/// failure is injected with [`MemoryStore::fail_next`]) nothing.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    /// Per scope: base and log (clients and ids are kept apart, indexed).
    scopes: BTreeMap<String, ScopeRecords>,
    /// scope -> client -> seq -> record.
    clients: BTreeMap<String, BTreeMap<String, BTreeMap<u64, ClientRecord>>>,
    /// scope -> id -> record. Looked up by id; listed (sorted) only when
    /// loading, so a hash map per scope.
    ids: BTreeMap<String, HashMap<String, IdRecord>>,
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

    fn records(&self, scope: &str) -> Option<ScopeRecords> {
        let base = self.scopes.get(scope);
        let clients = self.clients.get(scope);
        let ids = self.ids.get(scope);
        if base.is_none() && clients.is_none() && ids.is_none() {
            return None;
        }
        let mut r = base.cloned().unwrap_or_else(|| ScopeRecords {
            scope: scope.to_owned(),
            ..ScopeRecords::default()
        });
        r.clients = clients
            .into_iter()
            .flat_map(|c| c.values().flat_map(|m| m.values().cloned()))
            .collect();
        r.ids = ids.into_iter().flat_map(|m| m.values().cloned()).collect();
        r.ids.sort_by(|a, b| a.id.cmp(&b.id));
        Some(r)
    }

    fn scope_mut(&mut self, scope: &str) -> &mut ScopeRecords {
        keyed::entry(&mut self.scopes, scope, || ScopeRecords {
            scope: scope.to_owned(),
            ..ScopeRecords::default()
        })
    }
}

impl Store for MemoryStore {
    type Error = InjectedFailure;

    /// Memory only: its calls never block.
    fn blocks(&self) -> bool {
        false
    }

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
        for x in &batch.expired_ids {
            if let Some(s) = self.ids.get_mut(&x.scope) {
                s.remove(&x.id);
            }
        }
        for e in &batch.changes {
            self.scope_mut(&e.change.scope).changes.push(e.clone());
        }
        for c in &batch.clients {
            let s = keyed::entry(&mut self.clients, &c.scope, BTreeMap::new);
            let client = s.entry(c.client_id.clone()).or_default();
            client.insert(c.seq, c.clone());
            while client
                .first_key_value()
                .is_some_and(|(&seq, _)| seq < c.keep_from)
            {
                client.pop_first();
            }
        }
        for r in &batch.ids {
            let s = keyed::entry(&mut self.ids, &r.scope, HashMap::new);
            s.insert(r.id.clone(), r.clone());
        }
        self.persisted += 1;
        Ok(())
    }

    fn load(&mut self) -> Result<Recovered, InjectedFailure> {
        let names: Vec<String> = self
            .scopes
            .keys()
            .chain(self.clients.keys())
            .chain(self.ids.keys())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(Recovered {
            scopes: names.iter().filter_map(|n| self.records(n)).collect(),
        })
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, InjectedFailure> {
        Ok(self.records(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_only_writer_reports_no_stale_scope_and_is_always_reachable() {
        let mut store = MemoryStore::new();
        store.fail_next(1);
        let err = store
            .persist(&Batch {
                expired_ids: vec![crate::store::IdExpiry {
                    scope: "a".into(),
                    id: "m".into(),
                    cursor: None,
                }],
                ..Batch::default()
            })
            .expect_err("injected");
        assert!(MemoryStore::stale_scopes(&err).is_empty());
        assert!(!MemoryStore::is_unavailable(&err));
    }
}
