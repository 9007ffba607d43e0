//! [`AnyStore`]: the store a server binary picks at start (SQLite file,
//! PostgreSQL shared by several nodes, or memory), behind one type so the
//! driver is instantiated once.

use sync_core::store::{ScopeMark, ScopeRecords, ScopeUpdate};
use sync_core::{Batch, MemoryStore, Recovered, Store};
use sync_postgres::PgStore;
use sync_sqlite::SqliteStore;

/// A failure of whichever store is in use, with what the server core needs to know
/// about it: which scopes another node changed, and whether the store is
/// unreachable.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct AnyStoreError {
    source: Box<dyn std::error::Error + Send + Sync>,
    stale: Vec<String>,
    unavailable: bool,
}

impl AnyStoreError {
    fn new<S: Store>(e: S::Error) -> Self {
        AnyStoreError {
            stale: S::stale_scopes(&e),
            unavailable: S::is_unavailable(&e),
            source: Box::new(e),
        }
    }

    /// Wraps an error that is neither stale nor an outage (opening failed).
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        AnyStoreError {
            source: Box::new(e),
            stale: Vec::new(),
            unavailable: false,
        }
    }
}

/// The durable SQLite or PostgreSQL store, or the ephemeral memory store.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// A SQLite file (WAL, one transaction per batch).
    Sqlite(SqliteStore),
    /// PostgreSQL, possibly shared with other nodes (boxed: it carries its
    /// runtime and pool).
    Postgres(Box<PgStore>),
    /// Memory only: everything is lost when the process ends.
    Memory(MemoryStore),
}

impl AnyStore {
    /// True when other nodes may write the same records: pushes refused
    /// because another node wrote their scope are then retried after a
    /// reload, and other nodes' commits are followed.
    pub fn is_shared(&self) -> bool {
        matches!(self, AnyStore::Postgres(_))
    }

    /// For a shared store, a feed of the scopes other nodes commit to
    /// (`None`: the feed was interrupted, any scope may have changed). Hand
    /// it to [`crate::ServerHandle::follow_changes`].
    pub fn watch_changes(&self) -> Option<std::sync::mpsc::Receiver<Option<String>>> {
        let AnyStore::Postgres(pg) = self else {
            return None;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        pg.watch(move |changed| {
            let _ = tx.send(match changed {
                sync_postgres::Changed::Scope(scope) => Some(scope),
                _ => None,
            });
        });
        Some(rx)
    }
}

impl Store for AnyStore {
    type Error = AnyStoreError;

    fn persist(&mut self, batch: &Batch) -> Result<(), AnyStoreError> {
        match self {
            AnyStore::Sqlite(s) => s.persist(batch).map_err(AnyStoreError::new::<SqliteStore>),
            AnyStore::Postgres(s) => s.persist(batch).map_err(AnyStoreError::new::<PgStore>),
            AnyStore::Memory(s) => s.persist(batch).map_err(AnyStoreError::new::<MemoryStore>),
        }
    }

    fn load(&mut self) -> Result<Recovered, AnyStoreError> {
        match self {
            AnyStore::Sqlite(s) => s.load().map_err(AnyStoreError::new::<SqliteStore>),
            AnyStore::Postgres(s) => s.load().map_err(AnyStoreError::new::<PgStore>),
            AnyStore::Memory(s) => s.load().map_err(AnyStoreError::new::<MemoryStore>),
        }
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, AnyStoreError> {
        match self {
            AnyStore::Sqlite(s) => s
                .load_scope(scope)
                .map_err(AnyStoreError::new::<SqliteStore>),
            AnyStore::Postgres(s) => s.load_scope(scope).map_err(AnyStoreError::new::<PgStore>),
            AnyStore::Memory(s) => s
                .load_scope(scope)
                .map_err(AnyStoreError::new::<MemoryStore>),
        }
    }

    fn load_scope_since(
        &mut self,
        scope: &str,
        held: ScopeMark,
    ) -> Result<ScopeUpdate, AnyStoreError> {
        match self {
            AnyStore::Sqlite(s) => s
                .load_scope_since(scope, held)
                .map_err(AnyStoreError::new::<SqliteStore>),
            AnyStore::Postgres(s) => s
                .load_scope_since(scope, held)
                .map_err(AnyStoreError::new::<PgStore>),
            AnyStore::Memory(s) => s
                .load_scope_since(scope, held)
                .map_err(AnyStoreError::new::<MemoryStore>),
        }
    }

    fn load_scopes_since(
        &mut self,
        scopes: &[(&str, ScopeMark)],
    ) -> Result<Vec<ScopeUpdate>, AnyStoreError> {
        match self {
            AnyStore::Sqlite(s) => s
                .load_scopes_since(scopes)
                .map_err(AnyStoreError::new::<SqliteStore>),
            AnyStore::Postgres(s) => s
                .load_scopes_since(scopes)
                .map_err(AnyStoreError::new::<PgStore>),
            AnyStore::Memory(s) => s
                .load_scopes_since(scopes)
                .map_err(AnyStoreError::new::<MemoryStore>),
        }
    }

    fn forget_scope(&mut self, scope: &str) {
        match self {
            AnyStore::Sqlite(s) => s.forget_scope(scope),
            AnyStore::Postgres(s) => s.forget_scope(scope),
            AnyStore::Memory(s) => s.forget_scope(scope),
        }
    }

    fn stale_scopes(error: &AnyStoreError) -> Vec<String> {
        error.stale.clone()
    }

    fn is_unavailable(error: &AnyStoreError) -> bool {
        error.unavailable
    }

    fn blocks(&self) -> bool {
        match self {
            AnyStore::Sqlite(s) => s.blocks(),
            AnyStore::Postgres(s) => s.blocks(),
            AnyStore::Memory(s) => s.blocks(),
        }
    }
}
