//! One batch, one transaction, in two flights: the first begins it and
//! locks the touched scopes' version rows (waiting for any other node
//! writing them), the second writes every record with one statement per
//! table (client and id rows stamped with their scope's new version), bumps
//! the versions, sends the change notices and commits.

use std::collections::BTreeMap;

use sync_core::Batch;
use sync_core::store::Trim;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::pipeline::{self, simple, step};
use crate::{Error, delta};
use sync_core::store::columns::{int, to_json};

/// The writing statements, prepared once per connection.
pub(crate) struct Statements {
    ensure: Statement,
    lock: Statement,
    trim_changes: Statement,
    trim_bases: Statement,
    changes: Statement,
    clients: Statement,
    prune: Statement,
    ids: Statement,
    expire: Statement,
    bump: Statement,
    notify: Statement,
    check: Statement,
    /// The reads of a delta, for a batch that locks first.
    delta: delta::Statements,
}

const SQL: [&str; 12] = [
    // ensure: a version row for every scope about to be locked.
    "INSERT INTO sync_scopes (scope, version)
     SELECT s, 0 FROM UNNEST($1::text[]) AS s ON CONFLICT (scope) DO NOTHING",
    // lock: in scope order (the array is sorted), so concurrent batches of
    // two nodes queue on the scope instead of deadlocking.
    "SELECT scope, version FROM sync_scopes WHERE scope = ANY($1::text[])
     ORDER BY scope FOR UPDATE",
    // trim_changes: a trim at or below the stored base drops nothing. The
    // rows are found per trim through the primary key (`OFFSET 0` keeps the
    // lateral scan from being flattened into a join that a plan made for
    // any arrays would run as a scan of the whole log) and deleted by row
    // address.
    "DELETE FROM sync_changes WHERE ctid = ANY(ARRAY(
         SELECT c.ctid FROM UNNEST($1::text[], $2::int8[]) AS t(scope, before),
             LATERAL (SELECT ctid FROM sync_changes c
                      WHERE c.scope = t.scope AND c.cursor < t.before
                        AND NOT EXISTS (SELECT 1 FROM sync_bases b
                                        WHERE b.scope = t.scope AND b.before >= t.before)
                      OFFSET 0) AS c))",
    // trim_bases
    "INSERT INTO sync_bases (scope, before, base)
     SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[])
     ON CONFLICT (scope) DO UPDATE SET before = excluded.before, base = excluded.base
     WHERE sync_bases.before < excluded.before",
    // changes: a plain INSERT, so a cursor already stored is a refused
    // batch, never an overwrite.
    "INSERT INTO sync_changes (scope, cursor, group_end, time, data)
     SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[])",
    // clients
    "INSERT INTO sync_clients (scope, client_id, seq, keep_from, result, version)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::int8[])
     ON CONFLICT (scope, client_id, seq)
     DO UPDATE SET keep_from = excluded.keep_from, result = excluded.result,
                   version = excluded.version",
    // prune: a record never prunes a higher sequence than its own, so
    // pruning after all inserts equals pruning after each. Found per client
    // through the primary key and deleted by row address, as trim_changes.
    "DELETE FROM sync_clients WHERE ctid = ANY(ARRAY(
         SELECT c.ctid
         FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS k(scope, client_id, keep_from),
             LATERAL (SELECT ctid FROM sync_clients c
                      WHERE c.scope = k.scope AND c.client_id = k.client_id
                        AND c.seq < k.keep_from OFFSET 0) AS c))",
    // ids
    "INSERT INTO sync_ids (scope, id, time, result, version)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[])
     ON CONFLICT (scope, id) DO UPDATE SET time = excluded.time, result = excluded.result,
                                           version = excluded.version",
    // expire
    "DELETE FROM sync_ids i USING UNNEST($1::text[], $2::text[]) AS k(scope, id)
     WHERE i.scope = k.scope AND i.id = k.id",
    // bump: a deleted id row cannot be found by its version, so a scope
    // whose id records expired is marked, and a delta read across the mark
    // lists all of them.
    "UPDATE sync_scopes SET version = version + 1,
         ids_expired = CASE WHEN scope = ANY($2::text[]) THEN version + 1 ELSE ids_expired END
     WHERE scope = ANY($1::text[])",
    // notify: delivered to listeners only once (and if) the transaction
    // commits; the payloads are made by `watch::payloads`.
    "SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p",
    // check: after the lock, aborts the transaction (SY001) unless every
    // scope is at the version given.
    "SELECT sync_check_versions($1::text[], $2::int8[])",
];

/// The writing connection's settings.
///
/// - A node that stops between a refusal and its next batch must not hold
///   other nodes' writers for longer than an operation may take
///   (`idle_limit`): PostgreSQL then ends the session and its locks.
/// - Every statement keeps the one plan PostgreSQL makes for any arrays
///   instead of being planned again for each batch's: planning was about a
///   quarter of PostgreSQL's work per batch. Such a plan is made once, often
///   while the tables are still empty, when a scan of the whole table looks
///   cheapest and would then stay as the table grows; with sequential scans
///   off, and the deletes written to look rows up per key (see `SQL`),
///   every plan reaches rows through a key.
pub(crate) fn session_settings(idle_limit: std::time::Duration) -> String {
    format!(
        "SET idle_in_transaction_session_timeout = {};
         SET plan_cache_mode = force_generic_plan;
         SET enable_seqscan = off",
        idle_limit.as_millis().max(1)
    )
}

impl Statements {
    /// Prepares every statement, in one flight.
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, Error> {
        let steps: Vec<_> = SQL.iter().map(|sql| step(client.prepare(sql))).collect();
        let prepared = pipeline::run(steps).await?;
        let mut it = prepared.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| Error::Config("statement missing".into()))
        };
        Ok(Statements {
            ensure: next()?,
            lock: next()?,
            trim_changes: next()?,
            trim_bases: next()?,
            changes: next()?,
            clients: next()?,
            prune: next()?,
            ids: next()?,
            expire: next()?,
            bump: next()?,
            notify: next()?,
            check: next()?,
            delta: delta::Statements::prepare(client).await?,
        })
    }
}

/// Begins a transaction and locks the version rows of `scopes` (sorted),
/// creating those of `fresh` (scopes that may have none yet) at 0; returns
/// each scope's version. Waits while another node's transaction holds one
/// of them. With `reads`, reads in the same flight what the scopes gained
/// after this node's view of them (nobody else can write them now), and
/// returns those rows too. The transaction stays open.
pub(crate) async fn begin_and_lock(
    client: &Client,
    st: &Statements,
    scopes: &[&str],
    fresh: &[&str],
    reads: Option<&delta::Columns<'_>>,
) -> Result<(BTreeMap<String, i64>, Option<delta::Rows>), Error> {
    let mut steps = vec![simple(client, "BEGIN")];
    if !fresh.is_empty() {
        steps.push(step(
            async move { client.query(&st.ensure, &[&fresh]).await },
        ));
    }
    steps.push(step(
        async move { client.query(&st.lock, &[&scopes]).await },
    ));
    let locked_at = steps.len() - 1;
    if let Some(cols) = reads {
        steps.extend(st.delta.reads(client, cols));
    }
    let mut answers = pipeline::run(steps).await?;
    let read = reads.map(|_| delta::rows_of(answers.drain(locked_at + 1..)));
    let versions = answers
        .pop()
        .into_iter()
        .flatten()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
        .collect();
    Ok((versions, read))
}

/// The scopes a batch locks (sorted), those that may lack a version row,
/// and the version each must be at.
pub(crate) struct Expect<'a> {
    pub(crate) scopes: &'a [&'a str],
    pub(crate) fresh: &'a [&'a str],
    pub(crate) known: &'a [i64],
}

/// Writes `batch`, stamping rows with `stamp` (each written scope's new
/// version), bumps those versions, announces the written scopes on
/// `channel` as `node` (see [`crate::watch`]), and commits: one flight. In the
/// open transaction whose locks cover the batch's scopes; or, with
/// `expect`, in a new one that first locks them and aborts with
/// [`crate::schema::STALE_CODE`] unless they are at the versions expected.
pub(crate) async fn write_and_commit(
    client: &Client,
    st: &Statements,
    batch: &Batch,
    stamp: &BTreeMap<String, i64>,
    (channel, node): (&str, &str),
    expect: Option<Expect<'_>>,
) -> Result<(), Error> {
    let touched: Vec<&str> = stamp.keys().map(String::as_str).collect();
    let stamp_of = |scope: &str| stamp.get(scope).copied().unwrap_or(0);

    // One trim per scope, the furthest: an upsert may not touch a row twice.
    let mut trims: BTreeMap<&str, &Trim> = BTreeMap::new();
    for t in &batch.trims {
        let e = trims.entry(t.scope.as_str()).or_insert(t);
        if t.before > e.before {
            *e = t;
        }
    }
    let mut trim_cols = (Vec::new(), Vec::new(), Vec::new());
    for t in trims.values() {
        trim_cols.0.push(t.scope.as_str());
        trim_cols.1.push(int("before", t.before)?);
        trim_cols.2.push(to_json(&t.base));
    }

    let mut changes = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in &batch.changes {
        let c = &e.change;
        changes.0.push(c.scope.as_str());
        changes.1.push(int("cursor", c.cursor)?);
        changes.2.push(int("group_end", e.group_end)?);
        changes.3.push(int("time", c.time.as_millis())?);
        changes.4.push(to_json(&c.data));
    }

    let mut clients = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for c in &batch.clients {
        clients.0.push(c.scope.as_str());
        clients.1.push(c.client_id.as_str());
        clients.2.push(int("seq", c.seq)?);
        clients.3.push(int("keep_from", c.keep_from)?);
        clients.4.push(to_json(&c.result));
        clients.5.push(stamp_of(&c.scope));
    }

    // One row per key (the last record wins), as one upsert statement may
    // not touch a row twice.
    let mut last: BTreeMap<(&str, &str), &sync_core::store::IdRecord> = BTreeMap::new();
    for r in &batch.ids {
        last.insert((r.scope.as_str(), r.id.as_str()), r);
    }
    let mut ids = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in last.values() {
        ids.0.push(r.scope.as_str());
        ids.1.push(r.id.as_str());
        ids.2.push(int("time", r.time.as_millis())?);
        ids.3.push(to_json(&r.result));
        ids.4.push(stamp_of(&r.scope));
    }

    let expired: (Vec<&str>, Vec<&str>) = batch
        .expired_ids
        .iter()
        .map(|x| (x.scope.as_str(), x.id.as_str()))
        .unzip();
    let mut expiring = expired.0.clone();
    expiring.sort_unstable();
    expiring.dedup();

    let notices = crate::watch::payloads(node, &touched);

    // Each statement's future owns its parameter list; the columns are
    // borrowed.
    let (trim_cols, changes, clients, ids, expired) =
        (&trim_cols, &changes, &clients, &ids, &expired);
    let (touched, expiring, notices) = (&touched, &expiring, &notices);
    let mut steps = Vec::with_capacity(14);
    if let Some(Expect {
        scopes,
        fresh,
        known,
    }) = expect
    {
        steps.push(simple(client, "BEGIN"));
        if !fresh.is_empty() {
            steps.push(step(
                async move { client.query(&st.ensure, &[&fresh]).await },
            ));
        }
        steps.push(step(
            async move { client.query(&st.lock, &[&scopes]).await },
        ));
        steps.push(step(async move {
            client.query(&st.check, &[&scopes, &known]).await
        }));
    }
    if !trims.is_empty() {
        steps.push(step(async move {
            client
                .query(&st.trim_changes, &[&trim_cols.0, &trim_cols.1])
                .await
        }));
        steps.push(step(async move {
            let params: [&(dyn ToSql + Sync); 3] = [&trim_cols.0, &trim_cols.1, &trim_cols.2];
            client.query(&st.trim_bases, &params).await
        }));
    }
    // Expiries before id records: a retried mutation's new record replaces
    // the one its batch expires.
    if !expired.0.is_empty() {
        steps.push(step(async move {
            client.query(&st.expire, &[&expired.0, &expired.1]).await
        }));
    }
    if !changes.0.is_empty() {
        steps.push(step(async move {
            let params: [&(dyn ToSql + Sync); 5] =
                [&changes.0, &changes.1, &changes.2, &changes.3, &changes.4];
            client.query(&st.changes, &params).await
        }));
    }
    if !clients.0.is_empty() {
        steps.push(step(async move {
            let params: [&(dyn ToSql + Sync); 6] = [
                &clients.0, &clients.1, &clients.2, &clients.3, &clients.4, &clients.5,
            ];
            client.query(&st.clients, &params).await
        }));
        steps.push(step(async move {
            let params: [&(dyn ToSql + Sync); 3] = [&clients.0, &clients.1, &clients.3];
            client.query(&st.prune, &params).await
        }));
    }
    if !ids.0.is_empty() {
        steps.push(step(async move {
            let params: [&(dyn ToSql + Sync); 5] = [&ids.0, &ids.1, &ids.2, &ids.3, &ids.4];
            client.query(&st.ids, &params).await
        }));
    }
    steps.push(step(async move {
        client.query(&st.bump, &[touched, expiring]).await
    }));
    steps.push(step(async move {
        client.query(&st.notify, &[&channel, notices]).await
    }));
    steps.push(simple(client, "COMMIT"));
    pipeline::run(steps).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every writing statement's plan, and every read of a delta (which the
    /// writing connection runs with a batch's locks), as the connection
    /// keeps it (made once for any arrays), that could read a whole table:
    /// a scan of one, a hash or merge join (which reads one side whole), or
    /// an index scan without a condition.
    async fn plans_reading_whole_tables(client: &tokio_postgres::Client) -> Vec<String> {
        let mut bad = Vec::new();
        for (i, sql) in SQL.iter().chain(crate::delta::SQL.iter()).enumerate() {
            let params = client.prepare(sql).await.expect("prepare").params().len();
            let nulls = vec!["NULL"; params].join(", ");
            client
                .batch_execute(&format!("PREPARE w{i} AS {sql}"))
                .await
                .expect("PREPARE");
            let plan: Vec<String> = client
                .query(&format!("EXPLAIN EXECUTE w{i}({nulls})"), &[])
                .await
                .expect("EXPLAIN")
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect();
            let plan = plan.join("\n");
            let scans =
                plan.matches("Index Scan").count() + plan.matches("Index Only Scan").count();
            if plan.contains("Seq Scan")
                || plan.contains("Hash Join")
                || plan.contains("Merge Join")
                || plan.matches("Index Cond").count() < scans
            {
                bad.push(format!("{sql}\n{plan}"));
            }
        }
        client
            .batch_execute("DEALLOCATE ALL")
            .await
            .expect("DEALLOCATE");
        bad
    }

    /// The writing plans find rows by key both when they are made on empty
    /// tables (a new deployment) and when made again once statistics show
    /// many rows: one scope, a few clients with many sequences each, as a
    /// busy deployment has, where a join reading a whole table looks
    /// cheaper to the planner than a lookup per key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_writing_plan_reaches_rows_through_keys() {
        let Some(mut client) = crate::test_db::connect().await else {
            return;
        };
        let schema = format!("plans_{}", std::process::id());
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; SET search_path = {schema}"
            ))
            .await
            .expect("schema");
        crate::schema::migrate(&mut client, Some(&schema))
            .await
            .expect("migrate");
        client
            .batch_execute(&session_settings(std::time::Duration::from_secs(5)))
            .await
            .expect("settings");
        let on_empty_tables = plans_reading_whole_tables(&client).await;
        client
            .batch_execute(
                "INSERT INTO sync_clients (scope, client_id, seq, keep_from, result, version)
                 SELECT 'load', 'c' || c, s, 0, '{}', s
                 FROM generate_series(1, 32) AS c, generate_series(1, 1000) AS s;
                 INSERT INTO sync_changes (scope, cursor, group_end, time, data)
                 SELECT 'load', n, n, 0, '{}' FROM generate_series(1, 30000) AS n;
                 INSERT INTO sync_ids (scope, id, time, result, version)
                 SELECT 'load', 'm' || n, 0, '{}', n FROM generate_series(1, 30000) AS n;
                 INSERT INTO sync_scopes (scope, version)
                 SELECT 's' || n, 0 FROM generate_series(1, 1000) AS n;
                 ANALYZE",
            )
            .await
            .expect("rows");
        let on_tables_with_rows = plans_reading_whole_tables(&client).await;
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drop");
        assert!(
            on_empty_tables.is_empty(),
            "plans made on empty tables that read whole tables:\n\n{}",
            on_empty_tables.join("\n\n")
        );
        assert!(
            on_tables_with_rows.is_empty(),
            "plans made on tables with rows that read whole tables:\n\n{}",
            on_tables_with_rows.join("\n\n")
        );
    }
}
