//! One batch, one transaction: lock and check the touched scopes' versions,
//! write every record with one statement per table (client and id rows
//! stamped with their scope's new version), bump the versions.

use std::collections::BTreeMap;

use sync_core::Batch;
use tokio_postgres::Client;

use crate::Error;
use sync_core::store::columns::{int, to_json};

/// Writes `batch` if every scope it touches is still at the version in
/// `known` (0 when absent); returns the scopes' new versions.
pub(crate) async fn persist(
    client: &mut Client,
    batch: &Batch,
    known: &BTreeMap<String, i64>,
    (channel, prefix): (&str, String),
) -> Result<Vec<(String, i64)>, Error> {
    let written = batch.written_scopes();
    let mut locked = written.clone();
    locked.extend(batch.verify.iter().map(String::as_str));
    let locked: Vec<&str> = locked.into_iter().collect();
    let touched: Vec<&str> = written.into_iter().collect();
    let tx = client.transaction().await?;

    // Per-scope serialization: the version rows of the scopes written and of
    // those only verified are locked in scope order
    // (the array is sorted), so concurrent batches of two nodes queue on
    // the scope instead of deadlocking.
    tx.execute(
        "INSERT INTO sync_scopes (scope, version)
         SELECT s, 0 FROM UNNEST($1::text[]) AS s ON CONFLICT (scope) DO NOTHING",
        &[&locked],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT scope, version FROM sync_scopes WHERE scope = ANY($1)
             ORDER BY scope FOR UPDATE",
            &[&locked],
        )
        .await?;
    let mut stale = Vec::new();
    let mut bumped = Vec::with_capacity(rows.len());
    for row in rows {
        let scope: String = row.get(0);
        let version: i64 = row.get(1);
        if known.get(&scope).copied().unwrap_or(0) != version {
            stale.push(scope);
        } else if touched.contains(&scope.as_str()) {
            bumped.push((scope, version + 1));
        }
    }
    if !stale.is_empty() {
        tx.rollback().await?;
        return Err(Error::Stale { scopes: stale });
    }
    // What each written row is stamped with, so a delta read after a
    // version finds it (see delta.rs).
    let stamp: BTreeMap<&str, i64> = bumped.iter().map(|(s, v)| (s.as_str(), *v)).collect();
    let stamp_of = |scope: &str| stamp.get(scope).copied().unwrap_or(0);

    for t in &batch.trims {
        let before = int("before", t.before)?;
        let stored = tx
            .query_opt(
                "SELECT before FROM sync_bases WHERE scope = $1",
                &[&t.scope],
            )
            .await?
            .map(|r| r.get::<_, i64>(0));
        if stored.is_some_and(|b| b >= before) {
            continue;
        }
        tx.execute(
            "DELETE FROM sync_changes WHERE scope = $1 AND cursor < $2",
            &[&t.scope, &before],
        )
        .await?;
        tx.execute(
            "INSERT INTO sync_bases (scope, before, base) VALUES ($1, $2, $3)
             ON CONFLICT (scope) DO UPDATE SET before = excluded.before, base = excluded.base",
            &[&t.scope, &before, &to_json(&t.base)],
        )
        .await?;
    }

    if !batch.changes.is_empty() {
        let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for e in &batch.changes {
            let c = &e.change;
            cols.0.push(c.scope.as_str());
            cols.1.push(int("cursor", c.cursor)?);
            cols.2.push(int("group_end", e.group_end)?);
            cols.3.push(int("time", c.time.as_millis())?);
            cols.4.push(to_json(&c.data));
        }
        // A plain INSERT: a cursor already stored is a refused batch, never
        // an overwrite.
        tx.execute(
            "INSERT INTO sync_changes (scope, cursor, group_end, time, data)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[])",
            &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4],
        )
        .await?;
    }

    if !batch.clients.is_empty() {
        let mut cols = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for c in &batch.clients {
            cols.0.push(c.scope.as_str());
            cols.1.push(c.client_id.as_str());
            cols.2.push(int("seq", c.seq)?);
            cols.3.push(int("keep_from", c.keep_from)?);
            cols.4.push(to_json(&c.result));
            cols.5.push(stamp_of(&c.scope));
        }
        tx.execute(
            "INSERT INTO sync_clients (scope, client_id, seq, keep_from, result, version)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[],
                                  $6::int8[])
             ON CONFLICT (scope, client_id, seq)
             DO UPDATE SET keep_from = excluded.keep_from, result = excluded.result,
                           version = excluded.version",
            &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5],
        )
        .await?;
        // A record never prunes a higher sequence than its own, so pruning
        // after all inserts equals pruning after each.
        tx.execute(
            "DELETE FROM sync_clients c
             USING UNNEST($1::text[], $2::text[], $3::int8[]) AS k(scope, client_id, keep_from)
             WHERE c.scope = k.scope AND c.client_id = k.client_id AND c.seq < k.keep_from",
            &[&cols.0, &cols.1, &cols.3],
        )
        .await?;
    }

    if !batch.ids.is_empty() {
        // One row per key (the last record wins), as one upsert statement
        // may not touch a row twice.
        let mut last: BTreeMap<(&str, &str), &sync_core::store::IdRecord> = BTreeMap::new();
        for r in &batch.ids {
            last.insert((r.scope.as_str(), r.id.as_str()), r);
        }
        let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in last.values() {
            cols.0.push(r.scope.as_str());
            cols.1.push(r.id.as_str());
            cols.2.push(int("time", r.time.as_millis())?);
            cols.3.push(to_json(&r.result));
            cols.4.push(stamp_of(&r.scope));
        }
        tx.execute(
            "INSERT INTO sync_ids (scope, id, time, result, version)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[])
             ON CONFLICT (scope, id) DO UPDATE SET time = excluded.time, result = excluded.result,
                                                   version = excluded.version",
            &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4],
        )
        .await?;
    }
    let mut expiring: Vec<&str> = batch.expired_ids.iter().map(|x| x.scope.as_str()).collect();
    if !batch.expired_ids.is_empty() {
        let ids: Vec<&str> = batch.expired_ids.iter().map(|x| x.id.as_str()).collect();
        tx.execute(
            "DELETE FROM sync_ids i USING UNNEST($1::text[], $2::text[]) AS k(scope, id)
             WHERE i.scope = k.scope AND i.id = k.id",
            &[&expiring, &ids],
        )
        .await?;
    }

    // A deleted row cannot be found by its version: a scope whose id
    // records expired is marked, and a delta read across the mark lists all
    // of them.
    expiring.sort_unstable();
    expiring.dedup();
    tx.execute(
        "UPDATE sync_scopes SET version = version + 1,
             ids_expired = CASE WHEN scope = ANY($2) THEN version + 1 ELSE ids_expired END
         WHERE scope = ANY($1)",
        &[&touched, &expiring],
    )
    .await?;
    // Delivered to listeners only once (and if) the transaction commits.
    tx.execute(
        "SELECT pg_notify($1, $2 || s) FROM UNNEST($3::text[]) AS s",
        &[&channel, &prefix, &touched],
    )
    .await?;
    tx.commit().await?;
    Ok(bumped)
}
