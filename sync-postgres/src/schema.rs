//! The versioned schema. Table `sync_schema` holds the version; connecting
//! applies the missing migrations in one transaction under an advisory lock,
//! so nodes starting together migrate once.

use tokio_postgres::Client;

use crate::Error;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 3;

/// Advisory lock key serializing migrations ("syncpg" in ASCII).
const MIGRATION_LOCK: i64 = 0x73_79_6e_63_70_67;

/// Migration `i` brings the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the log, client sequences, mutation ids, trim bases, and one
    // version row per scope that every batch locks and bumps.
    "CREATE TABLE sync_changes (
         scope     TEXT   NOT NULL,
         cursor    BIGINT NOT NULL,
         group_end BIGINT NOT NULL,
         time      BIGINT NOT NULL,
         data      TEXT   NOT NULL,
         PRIMARY KEY (scope, cursor)
     );
     CREATE TABLE sync_clients (
         scope     TEXT   NOT NULL,
         client_id TEXT   NOT NULL,
         seq       BIGINT NOT NULL,
         keep_from BIGINT NOT NULL,
         result    TEXT   NOT NULL,
         PRIMARY KEY (scope, client_id, seq)
     );
     CREATE TABLE sync_ids (
         scope  TEXT   NOT NULL,
         id     TEXT   NOT NULL,
         time   BIGINT NOT NULL,
         result TEXT   NOT NULL,
         PRIMARY KEY (scope, id)
     );
     CREATE TABLE sync_bases (
         scope  TEXT   NOT NULL PRIMARY KEY,
         before BIGINT NOT NULL,
         base   TEXT   NOT NULL
     );
     CREATE TABLE sync_scopes (
         scope   TEXT   NOT NULL PRIMARY KEY,
         version BIGINT NOT NULL
     );",
    // 1 -> 2: every client and id row carries the scope version its batch
    // set, and each scope the version of the last batch that expired id
    // records, so a node can read only what was written after the version
    // it holds (an incremental reload). Rows written before carry 0: older
    // than any version a node of this schema can hold, so a node that loaded
    // them never reads them again. Nodes of schema 1 must be stopped first:
    // their rows would carry 0 too and be missed by deltas.
    "ALTER TABLE sync_clients ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
     ALTER TABLE sync_ids ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
     ALTER TABLE sync_scopes ADD COLUMN ids_expired BIGINT NOT NULL DEFAULT 0;
     CREATE INDEX sync_clients_by_version ON sync_clients (scope, version);
     CREATE INDEX sync_ids_by_version ON sync_ids (scope, version);",
    // 2 -> 3: a check that aborts the transaction when a locked scope is not
    // at the version the writing node expects, so a batch can be sent in one
    // flight (lock, check, write, commit) and a stale one commits nothing.
    // Raised with its own code, SY001, and the stale scopes in the detail.
    "CREATE FUNCTION sync_check_versions(scopes TEXT[], known BIGINT[]) RETURNS VOID
     LANGUAGE plpgsql AS $$
     DECLARE stale TEXT[];
     BEGIN
         SELECT array_agg(s.scope ORDER BY s.scope) INTO stale
         FROM sync_scopes s JOIN UNNEST(scopes, known) AS k(scope, version)
           ON s.scope = k.scope
         WHERE s.version <> k.version;
         IF stale IS NOT NULL THEN
             RAISE EXCEPTION USING ERRCODE = 'SY001', MESSAGE = 'stale scopes',
                 DETAIL = array_to_string(stale, ' ');
         END IF;
     END $$;",
];

/// The SQLSTATE `sync_check_versions` raises.
pub(crate) const STALE_CODE: &str = "SY001";

/// Brings the database to [`SCHEMA_VERSION`], refusing one from a newer build.
/// `schema`, when given, is created first (the connection's `search_path`
/// points at it).
pub(crate) async fn migrate(client: &mut Client, schema: Option<&str>) -> Result<(), Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // Under the lock: nodes starting together on a new schema would
    // otherwise race to create it, and all but one fail (`IF NOT EXISTS`
    // does not make concurrent creations wait for each other).
    if let Some(schema) = schema {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await?;
    }
    tx.batch_execute("CREATE TABLE IF NOT EXISTS sync_schema (version INT NOT NULL)")
        .await?;
    let found: i32 = tx
        .query_opt("SELECT version FROM sync_schema", &[])
        .await?
        .map_or(0, |r| r.get(0));
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        // Ended here rather than by dropping it, which only queues the end
        // (and the advisory lock's release) for the connection's task.
        tx.commit().await?;
        return Ok(());
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql).await?;
    }
    tx.execute("DELETE FROM sync_schema", &[]).await?;
    tx.execute(
        "INSERT INTO sync_schema (version) VALUES ($1)",
        &[&SCHEMA_VERSION],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_migration_per_version() {
        assert_eq!(MIGRATIONS.len() as i32, SCHEMA_VERSION);
    }
}
