//! The persistence contract: what a driver's store must do with a [`Batch`],
//! and the in-memory implementation.

mod batch;
pub mod columns;
mod delta;
mod memory;

pub use batch::{
    Batch, ClientRecord, IdExpiry, IdRecord, LogEntry, Recovered, ScopeRecords, Trim, TrimBase,
};
pub use delta::{
    DeltaMismatch, ScopeDelta, ScopeMark, ScopeUpdate, load_whole, refresh_scope, refresh_scopes,
};
pub use memory::{InjectedFailure, MemoryStore};

use std::collections::BTreeMap;

/// A durable home for the engine's records, implemented by drivers (memory,
/// SQLite, PostgreSQL). Synchronous on purpose: async drivers run it on a
/// blocking thread.
///
/// Contract:
/// - [`Store::persist`] writes the whole batch atomically or not at all, and
///   returns only once it is durable. On `Err`, nothing of it may become
///   visible later; if the outcome is unknown (connection lost mid-commit),
///   the driver must restart the engine from [`Store::load`] rather than
///   report a failure. A store shared by several nodes is the exception: it
///   checks every batch against the versions it knows of the batch's scopes
///   (refusing it as stale, see [`Store::stale_scopes`], when another writer
///   moved one), and it does not count a batch whose outcome is unknown as
///   seen. It may then report that batch as unavailable: if the batch
///   landed, the next batch on its scopes is refused as stale and reads it
///   back, so the engine learns it as another writer's.
/// - [`Store::load`] returns every scope's records as last persisted.
/// - [`Store::load_scope`] returns one scope's records (`Ok(None)` if it has
///   none); it lets a future shared-database driver reload a single scope
///   (see [`crate::Engine::reload_scope`]).
///
/// A relational layout that satisfies it (one transaction per batch):
/// - `changes(scope, cursor, group_end, time, data)`, key `(scope, cursor)`;
/// - `client_results(scope, client_id, seq, result)`, key
///   `(scope, client_id, seq)`; after inserting a record, delete that
///   client's rows with `seq < keep_from`;
/// - `id_results(scope, id, result, time)`, key `(scope, id)`; delete on
///   `expired_ids`;
/// - `trim_bases(scope, before, base)`, key `scope`; on a trim with a greater
///   `before` than the stored one, replace the row and delete `changes` with
///   `cursor < before`; ignore it otherwise.
///
/// Results, data and bases are JSON (every record type is serde).
///
/// A store may lay records out differently as long as it loads the same:
/// sync-sqlite keeps a client record whose result carries changes on the row
/// of its last change, so a commit appends to the log instead of touching a
/// page per client, and applies the `keep_from` prune when loading.
pub trait Store {
    /// The store's failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes `batch` durable, atomically.
    fn persist(&mut self, batch: &Batch) -> Result<(), Self::Error>;

    /// [`Store::persist`], told where the engine's records of each scope the
    /// batch writes or verifies end (`None` for a scope it holds nothing
    /// of). A shared store that refuses the batch as stale may read what
    /// those scopes gained in the same round trip as the refusal, and answer
    /// the [`Store::load_scopes_since`] that follows from it. Default:
    /// [`Store::persist`].
    fn persist_marked(
        &mut self,
        batch: &Batch,
        marks: &BTreeMap<String, Option<ScopeMark>>,
    ) -> Result<(), Self::Error> {
        let _ = marks;
        self.persist(batch)
    }

    /// Locks `scopes` until this store's next [`Store::persist`] (which
    /// writes in the same transaction), for a store shared by several
    /// nodes: no other node can write them in between, so the
    /// [`Store::load_scopes_since`] that follows reads all that a batch
    /// computed on top must follow, and that batch is not refused as stale.
    /// Each scope comes with where the engine's records of it end (`None`:
    /// it holds nothing of it), so a store may read the deltas in the same
    /// round trip as the locks. A store that is the only writer has nothing
    /// to lock (the default).
    fn lock_scopes(&mut self, scopes: &[(String, Option<ScopeMark>)]) -> Result<(), Self::Error> {
        let _ = scopes;
        Ok(())
    }

    /// Everything stored, for recovery at start.
    fn load(&mut self) -> Result<Recovered, Self::Error>;

    /// One scope's records.
    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, Self::Error>;

    /// What another writer added to `scope` after `held` (and after what
    /// this store last loaded or wrote of it), for a driver whose engine
    /// already holds the scope up to `held`: reading and rebuilding only what
    /// is new keeps a reload's cost independent of the log's length. A store
    /// may answer [`ScopeUpdate::Full`] whenever it cannot tell what is new
    /// (the default, right for a store that is the only writer); a
    /// [`ScopeUpdate::Delta`] that does not follow `held` is treated the same
    /// way by [`refresh_scope`], which drivers call instead of this.
    fn load_scope_since(
        &mut self,
        scope: &str,
        held: ScopeMark,
    ) -> Result<ScopeUpdate, Self::Error> {
        let _ = held;
        load_whole(self, scope)
    }

    /// [`Store::load_scope_since`] for several scopes, answered in the same
    /// order: a store that can read them together (one round trip instead
    /// of one per scope) overrides it; [`refresh_scopes`] calls it.
    fn load_scopes_since(
        &mut self,
        scopes: &[(&str, ScopeMark)],
    ) -> Result<Vec<ScopeUpdate>, Self::Error> {
        scopes
            .iter()
            .map(|(scope, held)| self.load_scope_since(scope, *held))
            .collect()
    }

    /// The scopes another writer changed since this store last loaded or
    /// wrote them, when that is why `persist` refused a batch (nothing of it
    /// was written). A store shared by several nodes reports them; the
    /// driver then calls [`crate::Engine::handle_persist_failed`], reloads
    /// each scope ([`refresh_scope`], [`crate::Engine::apply_scope_update`])
    /// and may push the refused mutations again. A store that is the only
    /// writer never reports any (the default).
    fn stale_scopes(error: &Self::Error) -> Vec<String> {
        let _ = error;
        Vec::new()
    }

    /// Tells the store that the records it last loaded for `scope` were not
    /// taken by the engine (the scope had work in flight). A store shared by
    /// several nodes must then treat its view of the scope as unknown, so the
    /// next batch writing or verifying it is refused as stale and the driver
    /// reloads it. A store that is the only writer ignores it (the default).
    fn forget_scope(&mut self, scope: &str) {
        let _ = scope;
    }

    /// True when `error` means the store could not be reached (rather than
    /// refusing the batch): the answer is "unavailable, retry later", and
    /// the store is expected to recover by itself. Default: false.
    fn is_unavailable(error: &Self::Error) -> bool {
        let _ = error;
        false
    }

    /// True when its calls may block on IO (a disk, a network): a driver
    /// then runs them on a thread where blocking is allowed. A store that
    /// answers from memory returns false, and its jobs run in place, with no
    /// hand-off to another thread and back. Default: true.
    fn blocks(&self) -> bool {
        true
    }
}
