//! One batch, one transaction, in as few messages as PostgreSQL allows.
//!
//! Every statement of a batch's write runs inside one function,
//! `pg_temp.sync_write`, that each writing connection defines for itself
//! when it connects (see [`write_function`]): a batch is one call, so
//! PostgreSQL parses, plans and answers one message instead of one per
//! statement, and the driver encodes and matches one. A node that nobody
//! else writes beside sends that call alone, outside any transaction block:
//! the function locks the touched scopes' version rows, checks them, writes
//! every record with one statement per table (client and id rows stamped
//! with their scope's new version), bumps the versions and sends the change
//! notices, and the call commits as it returns. A node that must look
//! before writing begins a transaction that locks the scopes and reads what
//! they gained ([`begin_and_lock`]), then sends the call and `COMMIT`.
//!
//! Being defined per connection rather than by a migration, the function is
//! always the one this build writes with: nodes of different builds never
//! share it.

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
    write: Statement,
    /// The read of a delta, for a batch that locks first.
    delta: delta::Statement,
}

/// A version row for every scope about to be locked.
const ENSURE: &str = "INSERT INTO sync_scopes (scope, version)
     SELECT s, 0 FROM UNNEST($1::text[]) AS s ON CONFLICT (scope) DO NOTHING";

/// In scope order (the array is sorted), so concurrent batches of two nodes
/// queue on the scope instead of deadlocking.
const LOCK: &str = "SELECT scope, version FROM sync_scopes WHERE scope = ANY($1::text[])
     ORDER BY scope FOR UPDATE";

/// After the lock, aborts the transaction (SY001) unless every scope is at
/// the version given.
const CHECK: &str = "SELECT sync_check_versions($1::text[], $2::int8[])";

/// A trim at or below the stored base drops nothing. The rows are found per
/// trim through the primary key (`OFFSET 0` keeps the lateral scan from
/// being flattened into a join that a plan made for any arrays would run as
/// a scan of the whole log) and deleted by row address.
const TRIM_CHANGES: &str = "DELETE FROM sync_changes WHERE ctid = ANY(ARRAY(
         SELECT c.ctid FROM UNNEST($1::text[], $2::int8[]) AS t(scope, before),
             LATERAL (SELECT ctid FROM sync_changes c
                      WHERE c.scope = t.scope AND c.cursor < t.before
                        AND NOT EXISTS (SELECT 1 FROM sync_bases b
                                        WHERE b.scope = t.scope AND b.before >= t.before)
                      OFFSET 0) AS c))";

const TRIM_BASES: &str = "INSERT INTO sync_bases (scope, before, base)
     SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[])
     ON CONFLICT (scope) DO UPDATE SET before = excluded.before, base = excluded.base
     WHERE sync_bases.before < excluded.before";

/// A plain INSERT, so a cursor already stored is a refused batch, never an
/// overwrite.
const CHANGES: &str = "INSERT INTO sync_changes (scope, cursor, group_end, time, data)
     SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[])";

const CLIENTS: &str = "INSERT INTO sync_clients (scope, client_id, seq, keep_from, result, version)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::int8[])
     ON CONFLICT (scope, client_id, seq)
     DO UPDATE SET keep_from = excluded.keep_from, result = excluded.result,
                   version = excluded.version";

/// A record never prunes a higher sequence than its own, so pruning after
/// all inserts equals pruning after each. Found per client through the
/// primary key and deleted by row address, as [`TRIM_CHANGES`].
const PRUNE: &str = "DELETE FROM sync_clients WHERE ctid = ANY(ARRAY(
         SELECT c.ctid
         FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS k(scope, client_id, keep_from),
             LATERAL (SELECT ctid FROM sync_clients c
                      WHERE c.scope = k.scope AND c.client_id = k.client_id
                        AND c.seq < k.keep_from OFFSET 0) AS c))";

const IDS: &str = "INSERT INTO sync_ids (scope, id, time, result, version)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[])
     ON CONFLICT (scope, id) DO UPDATE SET time = excluded.time, result = excluded.result,
                                           version = excluded.version";

const EXPIRE: &str = "DELETE FROM sync_ids i USING UNNEST($1::text[], $2::text[]) AS k(scope, id)
     WHERE i.scope = k.scope AND i.id = k.id";

/// A deleted id row cannot be found by its version, so a scope whose id
/// records expired is marked, and a delta read across the mark lists all of
/// them.
const BUMP: &str = "UPDATE sync_scopes SET version = version + 1,
         ids_expired = CASE WHEN scope = ANY($2::text[]) THEN version + 1 ELSE ids_expired END
     WHERE scope = ANY($1::text[])";

/// Delivered to listeners only once (and if) the transaction commits; the
/// payloads are made by `watch::payloads`.
const NOTIFY: &str = "SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p";

/// Every statement a batch runs, each as PostgreSQL plans it (see the
/// tests).
#[cfg(test)]
const SQL: [&str; 12] = [
    ENSURE,
    LOCK,
    CHECK,
    TRIM_CHANGES,
    TRIM_BASES,
    CHANGES,
    CLIENTS,
    PRUNE,
    IDS,
    EXPIRE,
    BUMP,
    NOTIFY,
];

/// The types of `sync_write`'s parameters, in order:
///
/// | | |
/// | --- | --- |
/// | `$1`-`$3` | scopes to lock (`NULL`: the open transaction holds them), those that may lack a version row, the versions expected |
/// | `$4`-`$6` | trims: scope, before, base |
/// | `$7`-`$8` | expired ids: scope, id |
/// | `$9`-`$13` | changes: scope, cursor, group end, time, data |
/// | `$14`-`$19` | client records: scope, client, sequence, kept from, result, version |
/// | `$20`-`$24` | id records: scope, id, time, result, version |
/// | `$25`-`$26` | scopes to bump, those whose id records expired |
/// | `$27`-`$28` | notice channel, payloads |
const WRITE_PARAMS: [&str; 28] = [
    "text[]", "text[]", "int8[]", // lock
    "text[]", "int8[]", "text[]", // trims
    "text[]", "text[]", // expired
    "text[]", "int8[]", "int8[]", "int8[]", "text[]", // changes
    "text[]", "text[]", "int8[]", "int8[]", "text[]", "int8[]", // clients
    "text[]", "text[]", "int8[]", "text[]", "int8[]", // ids
    "text[]", "text[]", // bump
    "text", "text[]", // notify
];

/// `CREATE FUNCTION pg_temp.sync_write(...)`: the statements above, each
/// given its columns from the function's parameters (see
/// [`WRITE_PARAMS`]), each skipped when it has nothing to do. Expiries come
/// before id records: a retried mutation's new record replaces the one its
/// batch expires.
pub(crate) fn write_function() -> String {
    let perform = |sql: String| sql.replacen("SELECT", "PERFORM", 1);
    let body = [
        "IF $1 IS NOT NULL THEN".to_owned(),
        format!(
            "IF cardinality($2) > 0 THEN {}; END IF;",
            renumber(ENSURE, &[2])
        ),
        format!("{};", perform(renumber(LOCK, &[1]))),
        format!("{};", perform(renumber(CHECK, &[1, 3]))),
        "END IF;".to_owned(),
        format!(
            "IF cardinality($4) > 0 THEN {}; {}; END IF;",
            renumber(TRIM_CHANGES, &[4, 5]),
            renumber(TRIM_BASES, &[4, 5, 6])
        ),
        format!(
            "IF cardinality($7) > 0 THEN {}; END IF;",
            renumber(EXPIRE, &[7, 8])
        ),
        format!(
            "IF cardinality($9) > 0 THEN {}; END IF;",
            renumber(CHANGES, &[9, 10, 11, 12, 13])
        ),
        format!(
            "IF cardinality($14) > 0 THEN {}; {}; END IF;",
            renumber(CLIENTS, &[14, 15, 16, 17, 18, 19]),
            renumber(PRUNE, &[14, 15, 17])
        ),
        format!(
            "IF cardinality($20) > 0 THEN {}; END IF;",
            renumber(IDS, &[20, 21, 22, 23, 24])
        ),
        format!(
            "IF cardinality($25) > 0 THEN {}; END IF;",
            renumber(BUMP, &[25, 26])
        ),
        format!(
            "IF cardinality($28) > 0 THEN {}; END IF;",
            perform(renumber(NOTIFY, &[27, 28]))
        ),
    ];
    format!(
        "CREATE OR REPLACE FUNCTION pg_temp.sync_write({}) RETURNS VOID LANGUAGE plpgsql AS
         $sync_write$ BEGIN\n{}\nEND $sync_write$",
        WRITE_PARAMS.join(", "),
        body.join("\n")
    )
}

/// The call of [`write_function`], one parameter per entry of
/// [`WRITE_PARAMS`].
fn write_call() -> String {
    let params: Vec<String> = (1..=WRITE_PARAMS.len()).map(|i| format!("${i}")).collect();
    format!("SELECT pg_temp.sync_write({})", params.join(", "))
}

/// `sql` with its parameter `$i` written as `$to[i - 1]`.
fn renumber(sql: &str, to: &[usize]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        let n: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
        match to.get(n.wrapping_sub(1)) {
            Some(global) => out.push_str(&format!("${global}")),
            None => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// The writing connection's settings.
///
/// - A node that stops between a refusal and its next batch must not hold
///   other nodes' writers for longer than an operation may take
///   (`limit`, the store's timeout): PostgreSQL then ends the session and
///   its locks.
/// - No statement runs longer than the node waits for it (`limit` again):
///   a lock wait the node gave up on (another node stalled while holding
///   the scope) ends in PostgreSQL too, instead of taking the lock later
///   and holding up the writers behind it for a batch nobody waits for.
/// - Every statement keeps the one plan PostgreSQL makes for any arrays
///   instead of being planned again for each batch's: planning was about a
///   quarter of PostgreSQL's work per batch. Such a plan is made once, often
///   while the tables are still empty, when a scan of the whole table looks
///   cheapest and would then stay as the table grows; with sequential scans
///   off, and the deletes written to look rows up per key (see `SQL`),
///   every plan reaches rows through a key.
pub(crate) fn session_settings(limit: std::time::Duration) -> String {
    let ms = limit.as_millis().max(1);
    format!(
        "SET idle_in_transaction_session_timeout = {ms};
         SET statement_timeout = {ms};
         SET plan_cache_mode = force_generic_plan;
         SET enable_seqscan = off"
    )
}

impl Statements {
    /// Defines the connection's `sync_write` and prepares every statement.
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, Error> {
        client.batch_execute(&write_function()).await?;
        let call = write_call();
        let steps: Vec<_> = [ENSURE, LOCK, call.as_str()]
            .into_iter()
            .map(|sql| step(client.prepare(sql)))
            .collect();
        let prepared = pipeline::run(steps).await?;
        let [ensure, lock, write] = <[Statement; 3]>::try_from(prepared)
            .map_err(|_| Error::Config("statement missing".into()))?;
        Ok(Statements {
            ensure,
            lock,
            write,
            delta: delta::Statement::prepare(client).await?,
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
    if let Some(cols) = reads {
        steps.push(st.delta.read(client, cols));
    }
    let mut answers = pipeline::run(steps).await?;
    let read = reads.map(|_| answers.pop().unwrap_or_default());
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
/// `channel` as `node` (see [`crate::watch`]), and commits: one call of
/// `sync_write`, in one flight. In the open transaction whose locks cover
/// the batch's scopes (then with `COMMIT`); or, with `expect`, as a
/// transaction of its own that first locks them and aborts with
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

    let no_text: [&str; 0] = [];
    let no_int: [i64; 0] = [];
    let (lock, fresh, known): (Option<&[&str]>, &[&str], &[i64]) = match &expect {
        Some(e) => (Some(e.scopes), e.fresh, e.known),
        None => (None, &no_text, &no_int),
    };
    let params: [&(dyn ToSql + Sync); WRITE_PARAMS.len()] = [
        &lock,
        &fresh,
        &known,
        &trim_cols.0,
        &trim_cols.1,
        &trim_cols.2,
        &expired.0,
        &expired.1,
        &changes.0,
        &changes.1,
        &changes.2,
        &changes.3,
        &changes.4,
        &clients.0,
        &clients.1,
        &clients.2,
        &clients.3,
        &clients.4,
        &clients.5,
        &ids.0,
        &ids.1,
        &ids.2,
        &ids.3,
        &ids.4,
        &touched,
        &expiring,
        &channel,
        &notices,
    ];
    let write = step(client.query(&st.write, &params));
    if expect.is_some() {
        // Outside a transaction block: the call is its own transaction.
        pipeline::run(vec![write]).await?;
    } else {
        pipeline::run(vec![write, simple(client, "COMMIT")]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement's own parameters become the function's, and nothing
    /// else in it changes: a parameter beyond the map is left as written.
    #[test]
    fn statements_take_the_functions_parameters() {
        assert_eq!(
            renumber("f($1::text[], $2, $12) = $3", &[7, 25]),
            "f($7::text[], $25, $12) = $3"
        );
        assert_eq!(renumber("no parameters", &[4]), "no parameters");
        assert_eq!(renumber("ends with $2", &[1, 9]), "ends with $9");
        let f = write_function();
        assert!(
            f.contains("UNNEST($9::text[], $10::int8[], $11::int8[], $12::int8[], $13::text[])")
        );
        assert!(f.contains("PERFORM pg_notify($27, p) FROM UNNEST($28::text[])"));
        assert!(f.contains("PERFORM sync_check_versions($1::text[], $3::int8[])"));
        assert!(write_call().starts_with("SELECT pg_temp.sync_write($1, $2, "));
        assert!(write_call().ends_with(", $27, $28)"));
        // Every parameter reaches a statement.
        let body = &f[f.find("BEGIN").unwrap_or(0)..];
        for n in 1..=WRITE_PARAMS.len() {
            let used = body
                .match_indices(&format!("${n}"))
                .any(|(at, m)| !body[at + m.len()..].starts_with(|c: char| c.is_ascii_digit()));
            assert!(used, "${n} unused in {body}");
        }
    }

    /// Every writing statement's plan, and every read of a delta (which the
    /// writing connection runs with a batch's locks), as the connection
    /// keeps it (made once for any arrays), that could read a whole table:
    /// a scan of one, a hash or merge join (which reads one side whole), or
    /// an index scan without a condition.
    async fn plans_reading_whole_tables(client: &tokio_postgres::Client) -> Vec<String> {
        let mut bad = Vec::new();
        for (i, sql) in SQL.iter().chain([&crate::delta::SQL]).enumerate() {
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
