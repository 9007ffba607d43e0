//! The versioned schema. `PRAGMA user_version` records which migrations ran;
//! opening a file applies the missing ones in one transaction.

use rusqlite::Connection;

use crate::Error;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Migration `i` brings the file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the log, client sequences, mutation ids and trim bases.
    // `WITHOUT ROWID` keeps each table clustered on the key it is read by.
    "CREATE TABLE changes (
         scope     TEXT    NOT NULL,
         cursor    INTEGER NOT NULL,
         group_end INTEGER NOT NULL,
         time      INTEGER NOT NULL,
         data      TEXT    NOT NULL,
         PRIMARY KEY (scope, cursor)
     ) WITHOUT ROWID;
     CREATE TABLE clients (
         scope     TEXT    NOT NULL,
         client_id TEXT    NOT NULL,
         seq       INTEGER NOT NULL,
         keep_from INTEGER NOT NULL,
         result    TEXT    NOT NULL,
         PRIMARY KEY (scope, client_id, seq)
     ) WITHOUT ROWID;
     CREATE TABLE ids (
         scope  TEXT    NOT NULL,
         id     TEXT    NOT NULL,
         time   INTEGER NOT NULL,
         result TEXT    NOT NULL,
         PRIMARY KEY (scope, id)
     ) WITHOUT ROWID;
     CREATE TABLE bases (
         scope  TEXT    NOT NULL PRIMARY KEY,
         before INTEGER NOT NULL,
         base   TEXT    NOT NULL
     ) WITHOUT ROWID;",
];

/// Brings `conn` to [`SCHEMA_VERSION`], refusing files from a newer build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    for sql in &MIGRATIONS[found as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_migration_per_version() {
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
    }
}
