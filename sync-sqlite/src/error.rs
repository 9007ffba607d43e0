//! What can go wrong when storing or loading.

/// A failure of the SQLite store. Any error from [`crate::SqliteStore`]'s
/// `persist` means nothing of the batch was written (the transaction rolled
/// back).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite itself failed (IO error, disk full, locked, corrupt file, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A record could not be encoded into a column, or a stored column
    /// could not be decoded (bad JSON, a number out of range).
    #[error(transparent)]
    Column(#[from] sync_core::store::columns::ColumnError),
    /// The file was written by a newer version of this crate.
    #[error("database schema version {found} is newer than this build understands ({supported})")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
}
