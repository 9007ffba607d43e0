//! The versioned schema. `PRAGMA user_version` records which migrations ran;
//! opening a file applies the missing ones in one transaction.

use rusqlite::Connection;

use crate::Error;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 3;

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
    // 1 -> 2: a client's sequence record rides on the row of its mutation's
    // last change (NULL on every other row), so a commit appends to the log
    // instead of touching one page of `clients` per client. `clients` keeps
    // the records of mutations that wrote no change, and those moved out of
    // the log by a trim.
    "ALTER TABLE changes ADD COLUMN client_id TEXT;
     ALTER TABLE changes ADD COLUMN seq INTEGER;
     ALTER TABLE changes ADD COLUMN keep_from INTEGER;
     ALTER TABLE changes ADD COLUMN result TEXT;",
    // 2 -> 3: likewise a mutation id's record rides on its mutation's last
    // change row (`mutation_id`, with the record's result in `result` and
    // its time the row's `time`), instead of going to `ids` at a place its
    // id sorts to, one page per mutation. `ids` keeps the records of
    // mutations that wrote no change, and those a trim moved out of the log.
    "ALTER TABLE changes ADD COLUMN mutation_id TEXT;",
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

    /// A file written by version 1 keeps its rows and gains the columns
    /// that carry client and id records on the log.
    #[test]
    fn upgrades_a_version_1_file() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO changes VALUES ('a', 1, 1, 5, '{}');
             INSERT INTO clients VALUES ('a', 'c', 1, 1, '{\"ok\":true}');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let old: (i64, Option<String>) = conn
            .query_row("SELECT cursor, client_id FROM changes", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(old, (1, None));
        conn.execute(
            "INSERT INTO changes VALUES ('a', 2, 2, 6, '{}', 'c', 2, 1, '{}', NULL)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO changes VALUES ('a', 3, 3, 7, '{}', NULL, NULL, NULL, '{}', 'm')",
            [],
        )
        .unwrap();
        let clients: i64 = conn
            .query_row("SELECT COUNT(*) FROM clients", [], |r| r.get(0))
            .unwrap();
        assert_eq!(clients, 1);
    }
}
