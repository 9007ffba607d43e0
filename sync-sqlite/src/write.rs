//! Writing one batch: one transaction; client and id records ride on the
//! log.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sync_core::Batch;
use sync_core::store::IdRecord;
use sync_core::store::columns::{int, to_json};

use crate::Error;

/// Writes `batch` in one `BEGIN IMMEDIATE ... COMMIT`; on any error the
/// transaction is dropped, which rolls it back.
pub(crate) fn write(conn: &mut Connection, batch: &Batch) -> Result<(), Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
    {
        // Expiries first: a retried mutation's new record replaces the one
        // this batch expires. A record riding on a change row is cleared
        // there (its row is named by the expiry's cursor).
        let mut delete = tx.prepare_cached("DELETE FROM ids WHERE scope = ?1 AND id = ?2")?;
        let mut unride = tx.prepare_cached(
            "UPDATE changes SET mutation_id = NULL, result = NULL
             WHERE scope = ?1 AND cursor = ?2 AND mutation_id = ?3",
        )?;
        for x in &batch.expired_ids {
            delete.execute(params![x.scope, x.id])?;
            if let Some(cursor) = x.cursor {
                unride.execute(params![x.scope, int("cursor", cursor)?, x.id])?;
            }
        }
    }
    let ids = last_id_records(batch);
    let mut riding = Riders::of(batch, &ids);
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO changes (scope, cursor, group_end, time, data,
                                  client_id, seq, keep_from, result, mutation_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for e in &batch.changes {
            let c = &e.change;
            let key = (c.scope.as_str(), c.cursor);
            let (client, id) = match riding.clients.remove(&key) {
                Some(i) => {
                    riding.client_rode[i] = true;
                    (Some(&batch.clients[i]), None)
                }
                None => match riding.ids.remove(&key) {
                    Some(i) if ids[i].time == c.time => {
                        riding.id_rode[i] = true;
                        (None, Some(ids[i]))
                    }
                    _ => (None, None),
                },
            };
            let result = match (client, id) {
                (Some(r), _) => Some(to_json(&r.result)),
                (None, r) => r.map(|r| to_json(&r.result)),
            };
            insert.execute(params![
                c.scope,
                int("cursor", c.cursor)?,
                int("group_end", e.group_end)?,
                int("time", c.time.as_millis())?,
                to_json(&c.data),
                client.map(|r| &r.client_id),
                client.map(|r| int("seq", r.seq)).transpose()?,
                client.map(|r| int("keep_from", r.keep_from)).transpose()?,
                result,
                id.map(|r| &r.id),
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
        let loose = batch
            .clients
            .iter()
            .zip(&riding.client_rode)
            .filter(|(_, rode)| !**rode);
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
        let loose = ids.iter().zip(&riding.id_rode).filter(|(_, rode)| !**rode);
        for (r, _) in loose {
            upsert.execute(params![
                r.scope,
                r.id,
                int("time", r.time.as_millis())?,
                to_json(&r.result)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Before a trim deletes the log below `before`: the id records riding on
/// those rows move to `ids`, and the client records to `clients` (a
/// client's last sequence must outlive the log). Of client records only
/// what a prune would keep moves: per client, the rows at or
/// above the highest `keep_from` among its moving records; that floor also
/// prunes the client's older rows already in `clients`. Two passes over the
/// trimmed range and one key-range delete per client, so a trim of a long
/// log stays linear.
fn move_riders(tx: &rusqlite::Transaction<'_>, scope: &str, before: i64) -> Result<(), Error> {
    // Id records riding on the trimmed rows move as they are (a record is
    // stored in one place only, so nothing in `ids` is replaced).
    tx.prepare_cached(
        "INSERT OR REPLACE INTO ids (scope, id, time, result)
         SELECT scope, mutation_id, time, result FROM changes
         WHERE scope = ?1 AND cursor < ?2 AND mutation_id IS NOT NULL",
    )?
    .execute(params![scope, before])?;
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

/// The id records of `batch`, one per (scope, id): the last one named.
fn last_id_records(batch: &Batch) -> Vec<&IdRecord> {
    let mut last: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, r) in batch.ids.iter().enumerate() {
        last.insert((r.scope.as_str(), r.id.as_str()), i);
    }
    let mut order: Vec<usize> = last.into_values().collect();
    order.sort_unstable();
    order.into_iter().map(|i| &batch.ids[i]).collect()
}

/// The records that can ride on a change row of the batch, keyed by the
/// scope and cursor of that row, as indexes into `batch.clients` and into
/// the batch's id records; and which of them did ride.
struct Riders<'a> {
    clients: BTreeMap<(&'a str, u64), usize>,
    ids: BTreeMap<(&'a str, u64), usize>,
    client_rode: Vec<bool>,
    id_rode: Vec<bool>,
}

impl<'a> Riders<'a> {
    /// A record can ride when its result carries changes: on the row of the
    /// mutation's last change in the record's scope. One record per row, a
    /// client record first; one whose row is not in the batch stays loose.
    fn of(batch: &'a Batch, ids: &[&'a IdRecord]) -> Self {
        let mut clients = BTreeMap::new();
        for (i, c) in batch.clients.iter().enumerate() {
            if let Some(cursor) = c.last_change() {
                clients.entry((c.scope.as_str(), cursor)).or_insert(i);
            }
        }
        let mut riding_ids = BTreeMap::new();
        for (i, r) in ids.iter().enumerate() {
            if let Some(cursor) = r.last_change() {
                let key = (r.scope.as_str(), cursor);
                if !clients.contains_key(&key) {
                    riding_ids.entry(key).or_insert(i);
                }
            }
        }
        Riders {
            clients,
            ids: riding_ids,
            client_rode: vec![false; batch.clients.len()],
            id_rode: vec![false; ids.len()],
        }
    }
}
