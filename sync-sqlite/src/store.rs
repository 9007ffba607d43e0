//! [`SqliteStore`]: one connection, one transaction per batch.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use sync_core::store::ScopeRecords;
use sync_core::{Batch, Recovered, Store};

use crate::{Error, read, schema, write};
use sync_core::store::columns::uint;

/// How hard a commit tries to survive a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: every commit is fsynced before `persist` returns, so
    /// an acknowledged push survives a power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives the process being killed, but
    /// the last commits may be lost if the machine loses power.
    Normal,
}

/// WAL frames between automatic checkpoints (SQLite's default is 1000).
///
/// A commit rewrites the same few hot pages (each scope's log tail) as a new
/// WAL frame each time, and a checkpoint copies the latest version of every
/// page back into the database file. Checkpointing ten times less often
/// copies each hot page once for ten times as many commits: under a stream
/// of small pushes over 100 scopes it cut the server's CPU per push by about
/// a tenth and raised pushes/s by a fifth (BENCHMARKS.md, "Pushes through
/// wrk"), without moving p99 latency. The cost is disk: the WAL grows to
/// about 40 MiB (10 000 frames of 4 KiB) before it is reused.
const WAL_CHECKPOINT_PAGES: i64 = 10_000;

/// A [`Store`] in one SQLite file, in WAL mode.
///
/// Every [`Store::persist`] is one `BEGIN IMMEDIATE ... COMMIT`, so a batch is
/// written whole or not at all, and a crash at any point leaves the file at the
/// previous batch. The engine gathers concurrent pushes into one batch, so the
/// fsync cost is shared by all of them (group commit).
///
/// What a commit writes is kept to few pages, since each costs a WAL frame
/// to write, checksum, fsync and later checkpoint: a client's sequence
/// record rides on its mutation's last change row (appended to the log)
/// rather than going to the `clients` table, which would dirty one page
/// per client in the batch. `clients` holds only the records of mutations
/// that wrote no change and those a trim moved out of the log.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema
    /// up to date.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self, Error> {
        Self::with_connection(Connection::open(path)?, durability)
    }

    /// A private in-memory database: the same code path as a file, for tests.
    pub fn open_in_memory() -> Result<Self, Error> {
        Self::with_connection(Connection::open_in_memory()?, Durability::Full)
    }

    fn with_connection(mut conn: Connection, durability: Durability) -> Result<Self, Error> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // `journal_mode` answers with the mode in force (in-memory databases
        // stay "memory"), so it is read, not just set.
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        schema::migrate(&mut conn)?;
        Ok(Self { conn })
    }

    /// The highest cursor stored for `scope` (0 when its log is empty and it
    /// was never trimmed). For operators and tests.
    pub fn head(&self, scope: &str) -> Result<u64, Error> {
        let log: Option<i64> = self.conn.query_row(
            "SELECT MAX(cursor) FROM changes WHERE scope = ?1",
            [scope],
            |r| r.get(0),
        )?;
        let base: Option<i64> = self
            .conn
            .query_row("SELECT before FROM bases WHERE scope = ?1", [scope], |r| {
                r.get(0)
            })
            .optional()?;
        let log = log.map(|c| uint("cursor", c)).transpose()?.unwrap_or(0);
        let base = base.map(|b| uint("before", b)).transpose()?.unwrap_or(1);
        Ok(log.max(base.saturating_sub(1)))
    }
}

impl Store for SqliteStore {
    type Error = Error;

    fn persist(&mut self, batch: &Batch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        // On any error the transaction is dropped, which rolls it back.
        write::write(&mut self.conn, batch)
    }

    fn load(&mut self) -> Result<Recovered, Error> {
        Ok(Recovered {
            scopes: read::read(&self.conn, None)?.into_values().collect(),
        })
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, Error> {
        Ok(read::read(&self.conn, Some(scope))?.remove(scope))
    }
}
