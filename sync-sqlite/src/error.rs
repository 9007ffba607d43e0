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
    /// A stored JSON column could not be decoded: the file was changed by
    /// something other than this crate.
    #[error("stored JSON in {table}.{column} is invalid: {source}")]
    Json {
        /// Table of the bad value.
        table: &'static str,
        /// Column of the bad value.
        column: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A number does not fit SQLite's signed 64-bit integers.
    #[error("{what} {value} is too large to store")]
    OutOfRange {
        /// Which field.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// A stored integer is negative where only non-negative values are written.
    #[error("stored {what} {value} is negative")]
    Negative {
        /// Which field.
        what: &'static str,
        /// The value.
        value: i64,
    },
    /// The file was written by a newer version of this crate.
    #[error("database schema version {found} is newer than this build understands ({supported})")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
}
