//! How a relational driver turns the engine's records into column values and
//! back: unsigned numbers as signed 64-bit integers (what SQL databases
//! store), records and JSON data as JSON text. Shared by every SQL store so
//! they agree on the encoding and on its errors.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that cannot be stored, or a stored value that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ColumnError {
    /// A stored JSON column could not be decoded: the database was changed by
    /// something other than its driver.
    #[error("stored JSON in {table}.{column} is invalid: {source}")]
    Json {
        /// Table of the bad value.
        table: &'static str,
        /// Column of the bad value.
        column: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A number does not fit a signed 64-bit integer column.
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
}

/// A `u64` as a signed 64-bit integer column.
pub fn int(what: &'static str, value: u64) -> Result<i64, ColumnError> {
    i64::try_from(value).map_err(|_| ColumnError::OutOfRange { what, value })
}

/// A stored signed 64-bit integer back to `u64`.
pub fn uint(what: &'static str, value: i64) -> Result<u64, ColumnError> {
    u64::try_from(value).map_err(|_| ColumnError::Negative { what, value })
}

/// A record as JSON text. Kept as text (not a binary JSON type) so what is
/// loaded is byte for byte what was stored. Serializing the engine's own
/// record types cannot fail: no maps with non-string keys, no foreign
/// `Serialize`.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("sync-core records serialize to JSON")
}

/// Decodes a JSON text column of `table`.
pub fn from_json<T: DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<T, ColumnError> {
    serde_json::from_str(text).map_err(|source| ColumnError::Json {
        table,
        column,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_and_refuse_what_does_not_fit() {
        assert_eq!(uint("cursor", int("cursor", 42).unwrap()).unwrap(), 42);
        assert!(matches!(
            int("cursor", u64::MAX),
            Err(ColumnError::OutOfRange {
                what: "cursor",
                value: u64::MAX
            })
        ));
        assert!(matches!(
            uint("seq", -1),
            Err(ColumnError::Negative {
                what: "seq",
                value: -1
            })
        ));
    }

    #[test]
    fn bad_json_names_its_table_and_column() {
        let err = from_json::<u64>("changes", "data", "{").unwrap_err();
        assert_eq!(
            err.to_string().split(':').next(),
            Some("stored JSON in changes.data is invalid")
        );
        assert_eq!(
            from_json::<Vec<u64>>("t", "c", &to_json(&vec![1u64, 2])).unwrap(),
            vec![1, 2]
        );
    }
}
