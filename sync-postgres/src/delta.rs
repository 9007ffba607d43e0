//! Reading what other nodes wrote to scopes after the versions this node
//! holds: changes after the engine's head, client and id rows stamped with a
//! later version, in one repeatable-read snapshot with the scope's version,
//! so the version returned covers exactly what was read; every statement of
//! it in one flight.

use std::collections::BTreeMap;

use deadpool_postgres::ClientWrapper;
use sync_core::store::columns::{from_json, int, uint};
use sync_core::store::{ScopeDelta, ScopeMark, TrimBase};
use tokio_postgres::{Client, Row, Statement};

use crate::Error;
use crate::pipeline::{self, Step, simple, step};
use crate::read::{change_row, client_row, id_row};

/// One scope to read: its name, the version this node knows, and where the
/// engine's records end.
pub(crate) struct Wanted<'a> {
    pub(crate) scope: &'a str,
    pub(crate) known: i64,
    pub(crate) held: ScopeMark,
}

impl<'a> Wanted<'a> {
    /// `scope` read as a delta, if it can be: this node knows a version of
    /// it (in `versions`; a negative one was forgotten) and the engine
    /// holds records of it (`held`). Otherwise only a whole load will do.
    pub(crate) fn of(
        scope: &'a str,
        versions: &BTreeMap<String, i64>,
        held: Option<ScopeMark>,
    ) -> Option<Self> {
        Some(Wanted {
            scope,
            known: versions.get(scope).copied().filter(|v| *v >= 0)?,
            held: held?,
        })
    }
}

/// The columns of a delta's reads, one entry per scope wanted.
pub(crate) struct Columns<'a> {
    scopes: Vec<&'a str>,
    known: Vec<i64>,
    heads: Vec<i64>,
    first_kept: Vec<i64>,
}

impl<'a> Columns<'a> {
    pub(crate) fn of(wanted: &[Wanted<'a>]) -> Result<Self, Error> {
        let mut cols = Columns {
            scopes: Vec::with_capacity(wanted.len()),
            known: Vec::with_capacity(wanted.len()),
            heads: Vec::with_capacity(wanted.len()),
            first_kept: Vec::with_capacity(wanted.len()),
        };
        for w in wanted {
            cols.scopes.push(w.scope);
            cols.known.push(w.known);
            cols.heads.push(int("cursor", w.held.head)?);
            cols.first_kept.push(int("first_kept", w.held.first_kept)?);
        }
        Ok(cols)
    }
}

/// The rows of a delta's reads, in [`SQL`]'s order.
pub(crate) type Rows = [Vec<Row>; 5];

/// The statements of a delta's reads, prepared on one connection.
pub(crate) struct Statements([Statement; 5]);

impl Statements {
    /// Prepares them on the writing connection, in one flight.
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, Error> {
        Self::from(pipeline::run(SQL.iter().map(|sql| step(client.prepare(sql))).collect()).await?)
    }

    /// Prepares them on a pooled connection (which caches them), in one
    /// flight.
    async fn prepare_cached(client: &ClientWrapper) -> Result<Statements, Error> {
        Self::from(
            pipeline::run(
                SQL.iter()
                    .map(|sql| step(client.prepare_cached(sql)))
                    .collect(),
            )
            .await?,
        )
    }

    fn from(prepared: Vec<Statement>) -> Result<Statements, Error> {
        prepared
            .try_into()
            .map(Statements)
            .map_err(|_| Error::Config("statement missing".into()))
    }

    /// The reads, for a flight already inside a transaction.
    pub(crate) fn reads<'a>(&'a self, client: &'a Client, cols: &'a Columns<'_>) -> Vec<Step<'a>> {
        let [versions, bases, changes, clients, ids] = &self.0;
        let (scopes, known, heads, first_kept) =
            (&cols.scopes, &cols.known, &cols.heads, &cols.first_kept);
        vec![
            step(async move { client.query(versions, &[scopes]).await }),
            step(async move { client.query(bases, &[scopes, first_kept]).await }),
            step(async move { client.query(changes, &[scopes, heads]).await }),
            step(async move { client.query(clients, &[scopes, known]).await }),
            step(async move { client.query(ids, &[scopes, known]).await }),
        ]
    }
}

/// Takes the rows of [`Statements::reads`] out of a flight's answers.
pub(crate) fn rows_of(answers: impl IntoIterator<Item = Vec<Row>>) -> Rows {
    let mut it = answers.into_iter();
    std::array::from_fn(|_| it.next().unwrap_or_default())
}

/// For each of `wanted`, in order, the delta of its scope after its known
/// version and held mark, with the scope's version now; `None` for a scope
/// whose stored version is behind the known one (the tables were replaced),
/// so only a full load can tell. One snapshot and one flight for them all,
/// one statement per table.
pub(crate) async fn load_since(
    client: &ClientWrapper,
    wanted: &[Wanted<'_>],
) -> Result<Vec<Option<(ScopeDelta, i64)>>, Error> {
    let st = Statements::prepare_cached(client).await?;
    let cols = Columns::of(wanted)?;
    let mut steps = vec![simple(
        client,
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    )];
    steps.extend(st.reads(client, &cols));
    steps.push(simple(client, "COMMIT"));
    let answers = pipeline::run(steps).await?;
    assemble(wanted, rows_of(answers.into_iter().skip(1)))
}

/// The deltas of `wanted` from the rows of their reads (see
/// [`load_since`]). The rows must come from one view of the tables: one
/// snapshot, or a transaction holding the scopes' locks.
pub(crate) fn assemble(
    wanted: &[Wanted<'_>],
    [versions, bases, changes, clients, ids]: Rows,
) -> Result<Vec<Option<(ScopeDelta, i64)>>, Error> {
    let found: BTreeMap<String, (i64, i64)> = versions
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let mut out: BTreeMap<&str, ScopeDelta> = wanted
        .iter()
        .map(|w| (w.scope, ScopeDelta::empty(w.scope, w.held)))
        .collect();
    for row in &bases {
        if let Some(delta) = out.get_mut(row.get::<_, &str>(0)) {
            delta.base = Some(TrimBase {
                before: uint("before", row.get(1))?,
                base: from_json("sync_bases", "base", row.get(2))?,
            });
        }
    }
    for row in &changes {
        let e = change_row(row)?;
        if let Some(delta) = out.get_mut(e.change.scope.as_str()) {
            delta.changes.push(e);
        }
    }
    for row in &clients {
        let r = client_row(row)?;
        if let Some(delta) = out.get_mut(r.scope.as_str()) {
            delta.clients.push(r);
        }
    }
    for row in &ids {
        let r = id_row(row)?;
        if let Some(delta) = out.get_mut(r.scope.as_str()) {
            delta.ids.push(r);
        }
    }
    Ok(wanted
        .iter()
        .map(|w| {
            let mut delta = out.remove(w.scope)?;
            let Some(&(version, ids_expired)) = found.get(w.scope) else {
                // Never written: nothing to add, unless this node knew it
                // written (the tables were replaced).
                return (w.known == 0).then_some((ScopeDelta::empty(w.scope, w.held), 0));
            };
            if version < w.known {
                return None;
            }
            if version == w.known {
                // The notice was about a write this node already holds.
                return Some((ScopeDelta::empty(w.scope, w.held), version));
            }
            if delta.base.is_some() {
                // Another node trimmed: the delta cannot apply, the rest is moot.
                delta.changes.clear();
                delta.clients.clear();
                delta.ids.clear();
                return Some((delta, version));
            }
            // Rows deleted since cannot be listed: after an expiry, every
            // live one (the statement reads them all then).
            delta.ids_complete = ids_expired > w.known;
            Some((delta, version))
        })
        .collect())
}

/// The reads of a delta, each for every scope wanted (`$1`, with its held
/// mark or known version in `$2`): the scopes' versions, trim bases past the
/// held first cursor, changes after the held head, client and id rows
/// stamped after the known version (every id row when ids expired since).
///
/// Rows are found per scope through a key (`LATERAL ... OFFSET 0` keeps the
/// lookup from being flattened into a join), so the one plan PostgreSQL
/// makes for any arrays reads only what is new: a join over the arrays
/// would be planned as a merge join reading a scope's whole log.
pub(crate) const SQL: [&str; 5] = [
    "SELECT scope, version, ids_expired FROM sync_scopes WHERE scope = ANY($1::text[])",
    "SELECT b.scope, b.before, b.base
     FROM UNNEST($1::text[], $2::int8[]) AS h(scope, first_kept),
         LATERAL (SELECT * FROM sync_bases b
                  WHERE b.scope = h.scope AND b.before > h.first_kept OFFSET 0) AS b",
    "SELECT c.scope, c.cursor, c.group_end, c.time, c.data
     FROM UNNEST($1::text[], $2::int8[]) AS h(scope, head),
         LATERAL (SELECT * FROM sync_changes c
                  WHERE c.scope = h.scope AND c.cursor > h.head OFFSET 0) AS c
     ORDER BY c.scope, c.cursor",
    "SELECT c.scope, c.client_id, c.seq, c.keep_from, c.result
     FROM UNNEST($1::text[], $2::int8[]) AS k(scope, known),
         LATERAL (SELECT * FROM sync_clients c
                  WHERE c.scope = k.scope AND c.version > k.known OFFSET 0) AS c
     ORDER BY c.scope, c.client_id, c.seq",
    "SELECT i.scope, i.id, i.time, i.result
     FROM UNNEST($1::text[], $2::int8[]) AS k(scope, known),
         LATERAL (SELECT CASE WHEN s.ids_expired > k.known THEN -1 ELSE k.known END AS after
                  FROM sync_scopes s WHERE s.scope = k.scope OFFSET 0) AS s,
         LATERAL (SELECT * FROM sync_ids i
                  WHERE i.scope = k.scope AND i.version > s.after OFFSET 0) AS i
     ORDER BY i.scope, i.id",
];
