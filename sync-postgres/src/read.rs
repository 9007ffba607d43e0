//! Loading records back, grouped by scope, with the scopes' versions read in
//! the same snapshot.

use std::collections::BTreeMap;

use sync_core::store::{ClientRecord, IdRecord, LogEntry, ScopeRecords, TrimBase};
use sync_core::{Change, Timestamp};
use tokio_postgres::{Client, Row};

use crate::Error;
use sync_core::store::columns::{from_json, uint};

/// Records and versions of every scope, or of `only`.
pub(crate) type Loaded = (BTreeMap<String, ScopeRecords>, BTreeMap<String, i64>);

fn entry<'a>(scopes: &'a mut BTreeMap<String, ScopeRecords>, scope: &str) -> &'a mut ScopeRecords {
    scopes
        .entry(scope.to_owned())
        .or_insert_with(|| ScopeRecords {
            scope: scope.to_owned(),
            ..ScopeRecords::default()
        })
}

/// A read-only transaction that sees one snapshot of every table, so the
/// versions read in it match the records read in it.
pub(crate) async fn snapshot(
    client: &mut Client,
) -> Result<tokio_postgres::Transaction<'_>, Error> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// Reads every table in key order in one repeatable-read snapshot, so the
/// versions match the records exactly.
pub(crate) async fn load(client: &mut Client, only: Option<&str>) -> Result<Loaded, Error> {
    let tx = snapshot(client).await?;
    let filter = "($1::text IS NULL OR scope = $1)";
    let mut scopes: BTreeMap<String, ScopeRecords> = BTreeMap::new();
    let mut versions = BTreeMap::new();

    for row in tx
        .query(
            &format!("SELECT scope, version FROM sync_scopes WHERE {filter}"),
            &[&only],
        )
        .await?
    {
        versions.insert(row.get::<_, String>(0), row.get::<_, i64>(1));
    }

    for row in tx
        .query(
            &format!("SELECT scope, before, base FROM sync_bases WHERE {filter} ORDER BY scope"),
            &[&only],
        )
        .await?
    {
        let scope: String = row.get(0);
        entry(&mut scopes, &scope).base = Some(TrimBase {
            before: uint("before", row.get(1))?,
            base: from_json("sync_bases", "base", row.get(2))?,
        });
    }

    for row in tx
        .query(
            &format!(
                "SELECT scope, cursor, group_end, time, data FROM sync_changes
                 WHERE {filter} ORDER BY scope, cursor"
            ),
            &[&only],
        )
        .await?
    {
        let e = change_row(&row)?;
        entry(&mut scopes, &e.change.scope).changes.push(e);
    }

    for row in tx
        .query(
            &format!(
                "SELECT scope, client_id, seq, keep_from, result FROM sync_clients
                 WHERE {filter} ORDER BY scope, client_id, seq"
            ),
            &[&only],
        )
        .await?
    {
        let r = client_row(&row)?;
        entry(&mut scopes, &r.scope).clients.push(r);
    }

    for row in tx
        .query(
            &format!(
                "SELECT scope, id, time, result FROM sync_ids WHERE {filter} ORDER BY scope, id"
            ),
            &[&only],
        )
        .await?
    {
        let r = id_row(&row)?;
        entry(&mut scopes, &r.scope).ids.push(r);
    }
    tx.commit().await?;
    Ok((scopes, versions))
}

/// A `sync_changes` row selected as `scope, cursor, group_end, time, data`.
pub(crate) fn change_row(row: &Row) -> Result<LogEntry, Error> {
    change_at(row, [0, 1, 2, 3, 4])
}

/// A `sync_changes` record from the columns of `row` at `scope, cursor,
/// group_end, time, data`.
pub(crate) fn change_at(
    row: &Row,
    [scope, cursor, group_end, time, data]: [usize; 5],
) -> Result<LogEntry, Error> {
    Ok(LogEntry {
        change: Change {
            cursor: uint("cursor", row.get(cursor))?,
            scope: row.get(scope),
            time: Timestamp::from_millis(uint("time", row.get(time))?),
            data: from_json("sync_changes", "data", row.get(data))?,
        },
        group_end: uint("group_end", row.get(group_end))?,
    })
}

/// A `sync_clients` row selected as `scope, client_id, seq, keep_from, result`.
pub(crate) fn client_row(row: &Row) -> Result<ClientRecord, Error> {
    client_at(row, [0, 1, 2, 3, 4])
}

/// A `sync_clients` record from the columns of `row` at `scope, client_id,
/// seq, keep_from, result`.
pub(crate) fn client_at(
    row: &Row,
    [scope, client_id, seq, keep_from, result]: [usize; 5],
) -> Result<ClientRecord, Error> {
    Ok(ClientRecord {
        scope: row.get(scope),
        client_id: row.get(client_id),
        seq: uint("seq", row.get(seq))?,
        keep_from: uint("keep_from", row.get(keep_from))?,
        result: from_json("sync_clients", "result", row.get(result))?,
    })
}

/// A `sync_ids` row selected as `scope, id, time, result`.
pub(crate) fn id_row(row: &Row) -> Result<IdRecord, Error> {
    id_at(row, [0, 1, 2, 3])
}

/// A `sync_ids` record from the columns of `row` at `scope, id, time,
/// result`.
pub(crate) fn id_at(row: &Row, [scope, id, time, result]: [usize; 4]) -> Result<IdRecord, Error> {
    Ok(IdRecord {
        scope: row.get(scope),
        id: row.get(id),
        time: Timestamp::from_millis(uint("time", row.get(time))?),
        result: from_json("sync_ids", "result", row.get(result))?,
    })
}

/// The highest cursor of `scope`, counting a trim base's.
pub(crate) async fn head(client: &Client, scope: &str) -> Result<u64, Error> {
    let row = client
        .query_one(
            "SELECT (SELECT MAX(cursor) FROM sync_changes WHERE scope = $1),
                    (SELECT before FROM sync_bases WHERE scope = $1)",
            &[&scope],
        )
        .await?;
    let log = row
        .get::<_, Option<i64>>(0)
        .map(|c| uint("cursor", c))
        .transpose()?
        .unwrap_or(0);
    let base = row
        .get::<_, Option<i64>>(1)
        .map(|b| uint("before", b))
        .transpose()?
        .unwrap_or(1);
    Ok(log.max(base.saturating_sub(1)))
}
