//! Conversions between sync-core's record types and PostgreSQL column values.

use crate::Error;

/// A `u64` as PostgreSQL's `BIGINT` (signed 64-bit).
pub(crate) fn int(what: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::OutOfRange { what, value })
}

/// A stored `BIGINT` back to `u64`.
pub(crate) fn uint(what: &'static str, value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Negative { what, value })
}

/// Serializes a value into a JSON text column. JSON is kept as `TEXT`, not
/// `JSONB`, so what is loaded is byte for byte what was stored. Serializing
/// our own record types cannot fail.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("sync-core records serialize to JSON")
}

/// Decodes a JSON text column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|source| Error::Json {
        table,
        column,
        source,
    })
}
