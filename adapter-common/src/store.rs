//! [`AnyStore`]: the store a server binary picks at start (SQLite file or
//! memory), behind one type so the actor is instantiated once.

use sync_core::store::ScopeRecords;
use sync_core::{Batch, MemoryStore, Recovered, Store};
use sync_sqlite::SqliteStore;

/// A failure of whichever store is in use.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AnyStoreError(Box<dyn std::error::Error + Send + Sync>);

/// The durable SQLite store or the ephemeral memory store.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// A SQLite file (WAL, one transaction per batch).
    Sqlite(SqliteStore),
    /// Memory only: everything is lost when the process ends.
    Memory(MemoryStore),
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> AnyStoreError {
    AnyStoreError(Box::new(e))
}

impl Store for AnyStore {
    type Error = AnyStoreError;

    fn persist(&mut self, batch: &Batch) -> Result<(), AnyStoreError> {
        match self {
            AnyStore::Sqlite(s) => s.persist(batch).map_err(boxed),
            AnyStore::Memory(s) => s.persist(batch).map_err(boxed),
        }
    }

    fn load(&mut self) -> Result<Recovered, AnyStoreError> {
        match self {
            AnyStore::Sqlite(s) => s.load().map_err(boxed),
            AnyStore::Memory(s) => s.load().map_err(boxed),
        }
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, AnyStoreError> {
        match self {
            AnyStore::Sqlite(s) => s.load_scope(scope).map_err(boxed),
            AnyStore::Memory(s) => s.load_scope(scope).map_err(boxed),
        }
    }
}
