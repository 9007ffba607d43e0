//! Which store a [`Builder`](crate::Builder) opens at start: memory (the
//! default), a SQLite file, PostgreSQL, or any value of the application's
//! own that implements [`sync_core::Store`].

use adapter_common::AnyStore;
use sync_core::Store;

use crate::Error;

/// A store to open when the server starts (opening may block, so it runs on
/// the runtime's blocking pool). Implemented by the builder's built-in
/// choices and by [`Custom`]; applications do not implement it.
pub trait OpenStore: Send + 'static {
    /// The store it opens.
    type Store: Store + Send + 'static;

    /// Opens the store (blocking).
    fn open(self) -> Result<Self::Store, Error>;

    /// For a store shared with other nodes, the feed of scopes they commit to.
    fn watch(_store: &Self::Store) -> Option<std::sync::mpsc::Receiver<Option<String>>> {
        None
    }

    /// True when other nodes may write the same records.
    fn is_shared(_store: &Self::Store) -> bool {
        false
    }
}

/// The built-in stores, opened by name.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Builtin {
    /// Memory only: everything is lost when the process ends.
    #[default]
    Memory,
    /// A SQLite file, created if missing.
    #[cfg(feature = "sqlite")]
    Sqlite {
        /// The file.
        path: std::path::PathBuf,
        /// How hard a commit is synced.
        durability: sync_sqlite::Durability,
    },
    /// PostgreSQL, shared by several server nodes.
    #[cfg(feature = "postgres")]
    Postgres {
        /// `postgres://USER@HOST[:PORT]/DB`.
        url: String,
    },
}

impl OpenStore for Builtin {
    type Store = AnyStore;

    fn open(self) -> Result<AnyStore, Error> {
        match self {
            Builtin::Memory => Ok(AnyStore::Memory(sync_core::MemoryStore::new())),
            #[cfg(feature = "sqlite")]
            Builtin::Sqlite { path, durability } => {
                sync_sqlite::SqliteStore::open(&path, durability)
                    .map(AnyStore::Sqlite)
                    .map_err(|e| Error::Store {
                        store: format!("SQLite file {}", path.display()),
                        source: Box::new(e),
                        hint: "check that its directory exists and is writable, \
                           and that no other program holds the file",
                    })
            }
            #[cfg(feature = "postgres")]
            Builtin::Postgres { url } => {
                sync_postgres::PgStore::connect(&url, sync_postgres::PgOptions::default())
                    .map(|s| AnyStore::Postgres(Box::new(s)))
                    .map_err(|e| Error::Store {
                        // Never a password in a message: what follows the credentials.
                        store: format!(
                            "PostgreSQL {}",
                            url.rsplit_once('@').map_or(url.as_str(), |(_, host)| host)
                        ),
                        source: Box::new(e),
                        hint: "check that the server answers at that address \
                               and that the database exists",
                    })
            }
        }
    }

    fn watch(store: &AnyStore) -> Option<std::sync::mpsc::Receiver<Option<String>>> {
        store.watch_changes()
    }

    fn is_shared(store: &AnyStore) -> bool {
        store.is_shared()
    }
}

/// A store the application made itself ([`Builder::store`](crate::Builder::store)).
#[derive(Debug)]
pub struct Custom<S>(pub(crate) S);

impl<S: Store + Send + 'static> OpenStore for Custom<S> {
    type Store = S;

    fn open(self) -> Result<S, Error> {
        Ok(self.0)
    }
}
