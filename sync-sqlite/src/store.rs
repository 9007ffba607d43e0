//! [`SqliteStore`]: one connection, one transaction per batch.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sync_core::store::{ClientRecord, IdRecord, LogEntry, ScopeRecords, TrimBase};
use sync_core::{Batch, Change, Recovered, Store, Timestamp};

use crate::{Error, schema};
use sync_core::store::columns::{from_json, int, to_json, uint};

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

    fn write(&mut self, batch: &Batch) -> Result<(), Error> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for t in &batch.trims {
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT before FROM bases WHERE scope = ?1",
                    [&t.scope],
                    |r| r.get(0),
                )
                .optional()?;
            let before = int("before", t.before)?;
            if stored.is_some_and(|b| b >= before) {
                continue;
            }
            move_riders(&tx, &t.scope, before)?;
            tx.prepare_cached("DELETE FROM changes WHERE scope = ?1 AND cursor < ?2")?
                .execute(params![t.scope, before])?;
            tx.prepare_cached(
                "INSERT INTO bases (scope, before, base) VALUES (?1, ?2, ?3)
                 ON CONFLICT (scope) DO UPDATE SET before = excluded.before, base = excluded.base",
            )?
            .execute(params![t.scope, before, to_json(&t.base)])?;
        }
        let mut riding = riders(batch);
        let mut rode = vec![false; batch.clients.len()];
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO changes (scope, cursor, group_end, time, data,
                                      client_id, seq, keep_from, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for e in &batch.changes {
                let c = &e.change;
                let rider = riding.remove(&(c.scope.as_str(), c.cursor)).map(|i| {
                    rode[i] = true;
                    &batch.clients[i]
                });
                insert.execute(params![
                    c.scope,
                    int("cursor", c.cursor)?,
                    int("group_end", e.group_end)?,
                    int("time", c.time.as_millis())?,
                    to_json(&c.data),
                    rider.map(|r| &r.client_id),
                    rider.map(|r| int("seq", r.seq)).transpose()?,
                    rider.map(|r| int("keep_from", r.keep_from)).transpose()?,
                    rider.map(|r| to_json(&r.result)),
                ])?;
            }
        }
        {
            // A plain range on the primary key: an `OR` here would make
            // SQLite walk every stored sequence of the client.
            let mut prune = tx.prepare_cached(
                "DELETE FROM clients WHERE scope = ?1 AND client_id = ?2 AND seq < ?3",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO clients (scope, client_id, seq, keep_from, result)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let loose = batch.clients.iter().zip(&rode).filter(|(_, rode)| !**rode);
            for (c, _) in loose {
                let seq = int("seq", c.seq)?;
                let keep_from = int("keep_from", c.keep_from)?;
                prune.execute(params![c.scope, c.client_id, keep_from])?;
                insert.execute(params![
                    c.scope,
                    c.client_id,
                    seq,
                    keep_from,
                    to_json(&c.result)
                ])?;
            }
        }
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO ids (scope, id, time, result) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (scope, id) DO UPDATE SET time = excluded.time, result = excluded.result",
            )?;
            for r in &batch.ids {
                upsert.execute(params![
                    r.scope,
                    r.id,
                    int("time", r.time.as_millis())?,
                    to_json(&r.result)
                ])?;
            }
            let mut delete = tx.prepare_cached("DELETE FROM ids WHERE scope = ?1 AND id = ?2")?;
            for x in &batch.expired_ids {
                delete.execute(params![x.scope, x.id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Reads every table in key order, restricted to one scope when `only` is
    /// given, and groups the rows by scope.
    fn read(&self, only: Option<&str>) -> Result<BTreeMap<String, ScopeRecords>, Error> {
        let mut scopes: BTreeMap<String, ScopeRecords> = BTreeMap::new();
        let filter = |sql: &str| match only {
            Some(_) => sql.replace("{where}", "WHERE scope = ?1"),
            None => sql.replace("{where}", "WHERE ?1 IS NULL"),
        };
        let scope_entry = |scopes: &mut BTreeMap<String, ScopeRecords>, scope: &str| {
            if !scopes.contains_key(scope) {
                scopes.insert(
                    scope.to_owned(),
                    ScopeRecords {
                        scope: scope.to_owned(),
                        ..ScopeRecords::default()
                    },
                );
            }
        };

        let mut stmt = self.conn.prepare(&filter(
            "SELECT scope, before, base FROM bases {where} ORDER BY scope",
        ))?;
        let mut rows = stmt.query([only])?;
        while let Some(row) = rows.next()? {
            let scope: String = row.get(0)?;
            let base = TrimBase {
                before: uint("before", row.get(1)?)?,
                base: from_json("bases", "base", &row.get::<_, String>(2)?)?,
            };
            scope_entry(&mut scopes, &scope);
            scopes.get_mut(&scope).expect("inserted").base = Some(base);
        }

        let mut stmt = self.conn.prepare(&filter(
            "SELECT scope, cursor, group_end, time, data, client_id, seq, keep_from, result
             FROM changes {where} ORDER BY scope, cursor",
        ))?;
        let mut rows = stmt.query([only])?;
        while let Some(row) = rows.next()? {
            let scope: String = row.get(0)?;
            let entry = LogEntry {
                change: Change {
                    cursor: uint("cursor", row.get(1)?)?,
                    scope: scope.clone(),
                    time: Timestamp::from_millis(uint("time", row.get(3)?)?),
                    data: from_json("changes", "data", &row.get::<_, String>(4)?)?,
                },
                group_end: uint("group_end", row.get(2)?)?,
            };
            let rider = match row.get::<_, Option<String>>(5)? {
                Some(client_id) => Some(ClientRecord {
                    scope: scope.clone(),
                    client_id,
                    seq: uint("seq", row.get(6)?)?,
                    keep_from: uint("keep_from", row.get(7)?)?,
                    result: from_json("changes", "result", &row.get::<_, String>(8)?)?,
                }),
                None => None,
            };
            scope_entry(&mut scopes, &scope);
            let records = scopes.get_mut(&scope).expect("inserted");
            records.changes.push(entry);
            records.clients.extend(rider);
        }

        let mut stmt = self.conn.prepare(&filter(
            "SELECT scope, client_id, seq, keep_from, result FROM clients {where}
             ORDER BY scope, client_id, seq",
        ))?;
        let mut rows = stmt.query([only])?;
        while let Some(row) = rows.next()? {
            let scope: String = row.get(0)?;
            let record = ClientRecord {
                scope: scope.clone(),
                client_id: row.get(1)?,
                seq: uint("seq", row.get(2)?)?,
                keep_from: uint("keep_from", row.get(3)?)?,
                result: from_json("clients", "result", &row.get::<_, String>(4)?)?,
            };
            scope_entry(&mut scopes, &scope);
            scopes
                .get_mut(&scope)
                .expect("inserted")
                .clients
                .push(record);
        }
        for records in scopes.values_mut() {
            settle_clients(&mut records.clients);
        }

        let mut stmt = self.conn.prepare(&filter(
            "SELECT scope, id, time, result FROM ids {where} ORDER BY scope, id",
        ))?;
        let mut rows = stmt.query([only])?;
        while let Some(row) = rows.next()? {
            let scope: String = row.get(0)?;
            let record = IdRecord {
                scope: scope.clone(),
                id: row.get(1)?,
                time: Timestamp::from_millis(uint("time", row.get(2)?)?),
                result: from_json("ids", "result", &row.get::<_, String>(3)?)?,
            };
            scope_entry(&mut scopes, &scope);
            scopes.get_mut(&scope).expect("inserted").ids.push(record);
        }
        Ok(scopes)
    }
}

impl Store for SqliteStore {
    type Error = Error;

    fn persist(&mut self, batch: &Batch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        // On any error the transaction is dropped, which rolls it back.
        self.write(batch)
    }

    fn load(&mut self) -> Result<Recovered, Error> {
        Ok(Recovered {
            scopes: self.read(None)?.into_values().collect(),
        })
    }

    fn load_scope(&mut self, scope: &str) -> Result<Option<ScopeRecords>, Error> {
        Ok(self.read(Some(scope))?.remove(scope))
    }
}

/// Before a trim deletes the log below `before`: the client records riding
/// on those rows move to `clients` (a client's last sequence must outlive
/// the log). Only what a prune would keep moves: per client, the rows at or
/// above the highest `keep_from` among its moving records; that floor also
/// prunes the client's older rows already in `clients`. Two passes over the
/// trimmed range and one key-range delete per client, so a trim of a long
/// log stays linear.
fn move_riders(tx: &rusqlite::Transaction<'_>, scope: &str, before: i64) -> Result<(), Error> {
    let mut floors: BTreeMap<String, i64> = BTreeMap::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT client_id, MAX(keep_from) FROM changes
             WHERE scope = ?1 AND cursor < ?2 AND client_id IS NOT NULL GROUP BY client_id",
        )?;
        let mut rows = stmt.query(params![scope, before])?;
        while let Some(row) = rows.next()? {
            floors.insert(row.get(0)?, row.get(1)?);
        }
    }
    if floors.is_empty() {
        return Ok(());
    }
    let mut read = tx.prepare_cached(
        "SELECT client_id, seq, keep_from, result FROM changes
         WHERE scope = ?1 AND cursor < ?2 AND client_id IS NOT NULL",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO clients (scope, client_id, seq, keep_from, result)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut rows = read.query(params![scope, before])?;
    while let Some(row) = rows.next()? {
        let client_id: String = row.get(0)?;
        let seq: i64 = row.get(1)?;
        if floors.get(&client_id).is_some_and(|&floor| seq >= floor) {
            let keep_from: i64 = row.get(2)?;
            let result: String = row.get(3)?;
            insert.execute(params![scope, client_id, seq, keep_from, result])?;
        }
    }
    let mut prune =
        tx.prepare_cached("DELETE FROM clients WHERE scope = ?1 AND client_id = ?2 AND seq < ?3")?;
    for (client_id, floor) in &floors {
        prune.execute(params![scope, client_id, floor])?;
    }
    Ok(())
}

/// The client records that can ride on a change row of `batch`: those whose
/// result carries changes, keyed by the scope and cursor of the last one (the
/// mutation's last change), as indexes into `batch.clients`. A record whose
/// change is not in the batch stays loose and goes to `clients`.
fn riders(batch: &Batch) -> BTreeMap<(&str, u64), usize> {
    let mut riding = BTreeMap::new();
    for (i, c) in batch.clients.iter().enumerate() {
        if let Some(last) = c.result.changes.last()
            && last.scope == c.scope
        {
            riding.entry((c.scope.as_str(), last.cursor)).or_insert(i);
        }
    }
    riding
}

/// Puts the client records read from the log and from `clients` in order
/// (by client, then sequence; a sequence stored twice keeps its `clients`
/// row, read last) and drops what a prune on insert would have deleted: a
/// row below the `keep_from` of its own or any later record of its client.
fn settle_clients(clients: &mut Vec<ClientRecord>) {
    // Stable: of two rows for one sequence, the one read last stays last.
    clients.sort_by(|a, b| (&a.client_id, a.seq).cmp(&(&b.client_id, b.seq)));
    let mut keep = vec![true; clients.len()];
    let mut floor = 0;
    for i in (0..clients.len()).rev() {
        let next = clients.get(i + 1);
        let c = &clients[i];
        if next.is_none_or(|n| n.client_id != c.client_id) {
            floor = 0;
        } else if next.is_some_and(|n| n.seq == c.seq) {
            keep[i] = false;
            continue;
        }
        floor = floor.max(c.keep_from);
        keep[i] = c.seq >= floor;
    }
    let mut keep = keep.into_iter();
    clients.retain(|_| keep.next().unwrap_or(true));
}
