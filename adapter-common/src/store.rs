//! [`AnyStore`]: the store a server binary picks at start (SQLite file,
//! PostgreSQL shared by several nodes, or memory), behind one type so the
//! driver is instantiated once. Each durable store is there only with its
//! cargo feature (`sqlite`, `postgres`), so a build without one compiles none
//! of its dependencies.

use sync_core::store::{ScopeMark, ScopeRecords, ScopeUpdate};
use sync_core::{Batch, MemoryStore, Recovered, Store};
#[cfg(feature = "postgres")]
use sync_postgres::PgStore;
#[cfg(feature = "sqlite")]
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

/// A store this build was compiled without: the error names the cargo
/// feature that brings it in.
#[derive(Debug, thiserror::Error)]
#[error("{what}: this build has no support for it; enable the cargo feature `{feature}`")]
pub struct NotBuilt {
    /// What asked for the store (a flag and its value).
    pub what: String,
    /// The cargo feature that would bring it in.
    pub feature: &'static str,
}

/// The durable SQLite or PostgreSQL store, or the ephemeral memory store.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// A SQLite file (WAL, one transaction per batch).
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// PostgreSQL, possibly shared with other nodes (boxed: it carries its
    /// runtime and pool).
    #[cfg(feature = "postgres")]
    Postgres(Box<PgStore>),
    /// Memory only: everything is lost when the process ends.
    Memory(MemoryStore),
}

impl AnyStore {
    /// True when other nodes may write the same records: pushes refused
    /// because another node wrote their scope are then retried after a
    /// reload, and other nodes' commits are followed.
    pub fn is_shared(&self) -> bool {
        #[cfg(feature = "postgres")]
        if matches!(self, AnyStore::Postgres(_)) {
            return true;
        }
        false
    }

    /// For a shared store, a feed of the scopes other nodes commit to
    /// (`None`: the feed was interrupted, any scope may have changed). Hand
    /// it to [`crate::ServerHandle::follow_changes`].
    pub fn watch_changes(&self) -> Option<std::sync::mpsc::Receiver<Option<String>>> {
        match self {
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(pg) => {
                let (tx, rx) = std::sync::mpsc::channel();
                pg.watch(move |changed| {
                    let _ = tx.send(match changed {
                        sync_postgres::Changed::Scope(scope) => Some(scope),
                        _ => None,
                    });
                });
                Some(rx)
            }
            _ => None,
        }
    }
}

/// Runs `$body` on whichever store `$any` holds, with `$s` bound to it and
/// `$T` naming its type (for the error conversion).
macro_rules! each {
    ($any:expr, |$s:ident: $T:ident| $body:expr) => {
        match $any {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($s) => {
                type $T = SqliteStore;
                $body
            }
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($s) => {
                type $T = PgStore;
                $body
            }
            AnyStore::Memory($s) => {
                type $T = MemoryStore;
                $body
            }
        }
    };
    ($any:expr, |$s:ident| $body:expr) => {
        match $any {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($s) => $body,
            AnyStore::Memory($s) => $body,
        }
    };
}

impl Store for AnyStore {
    type Error = AnyStoreError;

    fn persist(&mut self, batch: &Batch) -> Result<(), AnyStoreError> {
        each!(self, |s: T| s
            .persist(batch)
            .map_err(AnyStoreError::new::<T>))
    }

    fn persist_marked(
        &mut self,
        batch: &Batch,
        marks: &std::collections::BTreeMap<String, Option<ScopeMark>>,
    ) -> Result<(), AnyStoreError> {
        each!(self, |s: T| s
            .persist_marked(batch, marks)
            .map_err(AnyStoreError::new::<T>))
    }

    fn lock_scopes(&mut self, scopes: &[(String, Option<ScopeMark>)]) -> Result<(), AnyStoreError> {
        each!(self, |s: T| s
            .lock_scopes(scopes)
            .map_err(AnyStoreError::new::<T>))
    }

    fn load(&mut self) -> Result<Recovered, AnyStoreError> {
        each!(self, |s: T| s.load().map_err(AnyStoreError::new::<T>))
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, AnyStoreError> {
        each!(self, |s: T| s
            .load_scope(scope)
            .map_err(AnyStoreError::new::<T>))
    }

    fn load_scope_since(
        &mut self,
        scope: &str,
        held: ScopeMark,
    ) -> Result<ScopeUpdate, AnyStoreError> {
        each!(self, |s: T| s
            .load_scope_since(scope, held)
            .map_err(AnyStoreError::new::<T>))
    }

    fn load_scopes_since(
        &mut self,
        scopes: &[(&str, ScopeMark)],
    ) -> Result<Vec<ScopeUpdate>, AnyStoreError> {
        each!(self, |s: T| s
            .load_scopes_since(scopes)
            .map_err(AnyStoreError::new::<T>))
    }

    fn forget_scope(&mut self, scope: &str) {
        each!(self, |s| s.forget_scope(scope))
    }

    fn stale_scopes(error: &AnyStoreError) -> Vec<String> {
        error.stale.clone()
    }

    fn is_unavailable(error: &AnyStoreError) -> bool {
        error.unavailable
    }

    fn blocks(&self) -> bool {
        each!(self, |s| s.blocks())
    }
}
