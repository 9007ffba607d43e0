//! Commands that change a scope outside of pushes: log trims and rebuilding a
//! scope from the store (applying a delta instead is in delta.rs).

use super::scope::ScopeData;
use super::{Engine, EngineError};
use crate::app::App;
use crate::store::Trim;

impl<A: App> Engine<A> {
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
        self.refuse_busy(&records.scope)?;
        let data = ScopeData::from_records(&self.app, records).map_err(|reason| {
            EngineError::BadRecords {
                scope: records.scope.clone(),
                reason,
            }
        })?;
        self.scopes.insert(records.scope.clone(), data);
        Ok(())
    }
}
