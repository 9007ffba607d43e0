//! Writing one batch: one transaction; client records ride on the log.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sync_core::Batch;
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
