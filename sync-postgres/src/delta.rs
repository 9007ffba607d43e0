//! Reading what other nodes wrote to one scope after the version this node
//! holds: changes after the engine's head, client and id rows stamped with a
//! later version, in one repeatable-read snapshot with the scope's version,
//! so the version returned covers exactly what was read.

use sync_core::store::columns::{from_json, int, uint};
use sync_core::store::{ScopeDelta, ScopeMark, TrimBase};
use tokio_postgres::Client;

use crate::Error;
use crate::read::{change_row, client_row, id_row};

/// The delta of `scope` after version `known` and the engine's `held` mark,
/// with the scope's version now; `None` when the stored version is behind
/// `known` (the tables were replaced), so only a full load can tell.
pub(crate) async fn load_since(
    client: &mut Client,
    scope: &str,
    known: i64,
    held: ScopeMark,
) -> Result<Option<(ScopeDelta, i64)>, Error> {
    let tx = crate::read::snapshot(client).await?;
    let mut delta = ScopeDelta::empty(scope, held);
    let Some(row) = tx
        .query_opt(
            "SELECT version, ids_expired FROM sync_scopes WHERE scope = $1",
            &[&scope],
        )
        .await?
    else {
        tx.commit().await?;
        return Ok((known == 0).then_some((delta, 0)));
    };
    let (version, ids_expired): (i64, i64) = (row.get(0), row.get(1));
    if version < known {
        tx.commit().await?;
        return Ok(None);
    }
    if version == known {
        // The notice was about a write this node already holds.
        tx.commit().await?;
        return Ok(Some((delta, version)));
    }

    let first_kept = int("first_kept", held.first_kept)?;
    if let Some(row) = tx
        .query_opt(
            "SELECT before, base FROM sync_bases WHERE scope = $1 AND before > $2",
            &[&scope, &first_kept],
        )
        .await?
    {
        // Another node trimmed: the delta cannot apply, the rest is moot.
        delta.base = Some(TrimBase {
            before: uint("before", row.get(0))?,
            base: from_json("sync_bases", "base", row.get(1))?,
        });
        tx.commit().await?;
        return Ok(Some((delta, version)));
    }

    let head = int("cursor", held.head)?;
    for row in tx
        .query(
            "SELECT scope, cursor, group_end, time, data FROM sync_changes
             WHERE scope = $1 AND cursor > $2 ORDER BY cursor",
            &[&scope, &head],
        )
        .await?
    {
        delta.changes.push(change_row(&row)?);
    }
    for row in tx
        .query(
            "SELECT scope, client_id, seq, keep_from, result FROM sync_clients
             WHERE scope = $1 AND version > $2 ORDER BY client_id, seq",
            &[&scope, &known],
        )
        .await?
    {
        delta.clients.push(client_row(&row)?);
    }
    // Rows deleted since cannot be listed: after an expiry, every live one.
    delta.ids_complete = ids_expired > known;
    let since = if delta.ids_complete { i64::MIN } else { known };
    for row in tx
        .query(
            "SELECT scope, id, time, result FROM sync_ids
             WHERE scope = $1 AND version > $2 ORDER BY id",
            &[&scope, &since],
        )
        .await?
    {
        delta.ids.push(id_row(&row)?);
    }
    tx.commit().await?;
    Ok(Some((delta, version)))
}
