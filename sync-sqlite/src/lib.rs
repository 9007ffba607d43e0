//! A durable [`sync_core::Store`] on SQLite.
//!
//! Owns: the on-disk layout of the sync log, client sequence records,
//! mutation-id records and trim bases, and the guarantee that one
//! [`sync_core::Batch`] is one SQLite transaction (group commit: however many
//! pushes the engine gathered into the batch, they cost one fsync).
//!
//! It is blocking and runtime-neutral: async drivers (tokio, smol) call it on a
//! blocking thread. It must never decide protocol questions (which cursor comes
//! next, whether a mutation is a replay): those belong to `sync-core`; this
//! crate only stores what a batch says and hands it back at start.
//!
//! ```no_run
//! use sync_core::Store;
//! use sync_sqlite::{SqliteStore, Durability};
//!
//! let mut store = SqliteStore::open("sync.db", Durability::Full)?;
//! let recovered = store.load()?; // hand to `sync_core::Engine::recover`
//! # Ok::<(), sync_sqlite::Error>(())
//! ```

mod error;
mod read;
mod schema;
mod store;
mod write;

pub use error::Error;
pub use schema::SCHEMA_VERSION;
pub use store::{Durability, SqliteStore};
