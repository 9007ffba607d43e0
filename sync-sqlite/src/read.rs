//! Reading records back at start (or one scope), as the engine recovers them.

use std::collections::BTreeMap;

use rusqlite::Connection;
use sync_core::store::columns::{from_json, uint};
use sync_core::store::{ClientRecord, IdRecord, LogEntry, ScopeRecords, TrimBase};
use sync_core::{Change, Timestamp};

use crate::Error;

/// Reads every table in key order, restricted to one scope when `only` is
/// given, and groups the rows by scope.
pub(crate) fn read(
    conn: &Connection,
    only: Option<&str>,
) -> Result<BTreeMap<String, ScopeRecords>, Error> {
    let mut scopes: BTreeMap<String, ScopeRecords> = BTreeMap::new();
    let filter = |sql: &str| match only {
        Some(_) => sql.replace("{where}", "WHERE scope = ?1"),
        None => sql.replace("{where}", "WHERE ?1 IS NULL"),
    };

    let mut stmt = conn.prepare(&filter(
        "SELECT scope, before, base FROM bases {where} ORDER BY scope",
    ))?;
    let mut rows = stmt.query([only])?;
    while let Some(row) = rows.next()? {
        let scope: String = row.get(0)?;
        let base = TrimBase {
            before: uint("before", row.get(1)?)?,
            base: from_json("bases", "base", &row.get::<_, String>(2)?)?,
        };
        records_of(&mut scopes, scope).base = Some(base);
    }

    let mut stmt = conn.prepare(&filter(
        "SELECT scope, cursor, group_end, time, data, client_id, seq, keep_from, result,
                mutation_id
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
        let id_rider = match row.get::<_, Option<String>>(9)? {
            Some(id) => Some(IdRecord {
                scope: scope.clone(),
                id,
                time: entry.change.time,
                result: from_json("changes", "result", &row.get::<_, String>(8)?)?,
            }),
            None => None,
        };
        let records = records_of(&mut scopes, scope);
        records.changes.push(entry);
        records.clients.extend(rider);
        records.ids.extend(id_rider);
    }

    let mut stmt = conn.prepare(&filter(
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
        records_of(&mut scopes, scope).clients.push(record);
    }
    for records in scopes.values_mut() {
        settle_clients(&mut records.clients);
    }

    let mut stmt = conn.prepare(&filter(
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
        records_of(&mut scopes, scope).ids.push(record);
    }
    Ok(scopes)
}

/// The records of `scope`, created empty the first time it is seen.
fn records_of(scopes: &mut BTreeMap<String, ScopeRecords>, scope: String) -> &mut ScopeRecords {
    scopes
        .entry(scope)
        .or_insert_with_key(|scope| ScopeRecords {
            scope: scope.clone(),
            ..ScopeRecords::default()
        })
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
