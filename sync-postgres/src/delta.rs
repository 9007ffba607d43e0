//! Reading what other nodes wrote to scopes after the versions this node
//! holds: changes after the engine's head, client and id rows stamped with a
//! later version, in one repeatable-read snapshot with the scope's version,
//! so the version returned covers exactly what was read. One statement
//! reads every table for every scope ([`SQL`]): PostgreSQL starts one
//! statement instead of one per table, and a node that takes turns with
//! others on a scope makes this read while holding the scope's lock, so
//! what it costs lengthens every turn.

use std::collections::BTreeMap;

use deadpool_postgres::ClientWrapper;
use sync_core::store::columns::{from_json, int, uint};
use sync_core::store::{ScopeDelta, ScopeMark, TrimBase};
use tokio_postgres::{Client, Row};

use crate::Error;
use crate::pipeline::{self, Step, simple, step};
use crate::read::{change_at, client_at, id_at};

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

/// The rows of a delta's read, each tagged with what it is (see [`SQL`]).
pub(crate) type Rows = Vec<Row>;

/// The statement of a delta's read, prepared on one connection.
pub(crate) struct Statement(tokio_postgres::Statement);

impl Statement {
    /// Prepares it on the writing connection.
    pub(crate) async fn prepare(client: &Client) -> Result<Statement, Error> {
        Ok(Statement(client.prepare(SQL).await?))
    }

    /// Prepares it on a pooled connection (which caches it).
    async fn prepare_cached(client: &ClientWrapper) -> Result<Statement, Error> {
        Ok(Statement(client.prepare_cached(SQL).await?))
    }

    /// The read, for a flight already inside a transaction.
    pub(crate) fn read<'a>(&'a self, client: &'a Client, cols: &'a Columns<'_>) -> Step<'a> {
        let (scopes, first_kept, heads, known) =
            (&cols.scopes, &cols.first_kept, &cols.heads, &cols.known);
        step(async move {
            client
                .query(&self.0, &[scopes, first_kept, heads, known])
                .await
        })
    }
}

/// For each of `wanted`, in order, the delta of its scope after its known
/// version and held mark, with the scope's version now; `None` for a scope
/// whose stored version is behind the known one (the tables were replaced),
/// so only a full load can tell. One snapshot, one flight and one statement
/// for them all.
pub(crate) async fn load_since(
    client: &ClientWrapper,
    wanted: &[Wanted<'_>],
) -> Result<Vec<Option<(ScopeDelta, i64)>>, Error> {
    let st = Statement::prepare_cached(client).await?;
    let cols = Columns::of(wanted)?;
    let steps = vec![
        simple(client, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        st.read(client, &cols),
        simple(client, "COMMIT"),
    ];
    let answers = pipeline::run(steps).await?;
    assemble(wanted, answers.into_iter().nth(1).unwrap_or_default())
}

/// The deltas of `wanted` from the rows of their reads (see
/// [`load_since`]). The rows must come from one view of the tables: one
/// snapshot, or a transaction holding the scopes' locks.
pub(crate) fn assemble(
    wanted: &[Wanted<'_>],
    rows: Rows,
) -> Result<Vec<Option<(ScopeDelta, i64)>>, Error> {
    let mut found: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut out: BTreeMap<&str, ScopeDelta> = wanted
        .iter()
        .map(|w| (w.scope, ScopeDelta::empty(w.scope, w.held)))
        .collect();
    for row in &rows {
        let tag: i16 = row.get(KIND);
        let scope: &str = row.get(SCOPE);
        let Some(kind) = Kind::of(tag) else {
            return Err(Error::Config(format!("a delta row of unknown kind {tag}")));
        };
        match kind {
            Kind::Version => {
                found.insert(scope.to_owned(), (row.get(A), row.get(B)));
            }
            Kind::Base => {
                if let Some(delta) = out.get_mut(scope) {
                    delta.base = Some(TrimBase {
                        before: uint("before", row.get(A))?,
                        base: from_json("sync_bases", "base", row.get(T))?,
                    });
                }
            }
            Kind::Change => {
                if let Some(delta) = out.get_mut(scope) {
                    delta.changes.push(change_at(row, [SCOPE, A, B, C, T])?);
                }
            }
            Kind::Client => {
                if let Some(delta) = out.get_mut(scope) {
                    delta.clients.push(client_at(row, [SCOPE, T, A, B, U])?);
                }
            }
            Kind::Id => {
                if let Some(delta) = out.get_mut(scope) {
                    delta.ids.push(id_at(row, [SCOPE, T, A, U])?);
                }
            }
        }
    }
    // In cursor order, which the statement does not promise.
    for delta in out.values_mut() {
        delta.changes.sort_by_key(|e| e.change.cursor);
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

/// The columns of [`SQL`]'s rows, by position.
const KIND: usize = 0;
const SCOPE: usize = 1;
const A: usize = 2;
const B: usize = 3;
const C: usize = 4;
const T: usize = 5;
const U: usize = 6;

/// What a row of [`SQL`] is: its first column holds the position here.
#[derive(Clone, Copy)]
enum Kind {
    Version,
    Base,
    Change,
    Client,
    Id,
}

impl Kind {
    const IN_ORDER: [Kind; 5] = [
        Kind::Version,
        Kind::Base,
        Kind::Change,
        Kind::Client,
        Kind::Id,
    ];

    fn of(tag: i16) -> Option<Kind> {
        usize::try_from(tag)
            .ok()
            .and_then(|i| Self::IN_ORDER.get(i).copied())
    }
}

/// The read of a delta, for every scope wanted (`$1`, with its held first
/// cursor in `$2`, its held head in `$3` and its known version in `$4`):
/// the scopes' versions, trim bases past the held first cursor, changes
/// after the held head, client and id rows stamped after the known version
/// (every id row when ids expired since), as one statement whose rows are
/// tagged with its [`Kind`] (0 to 4), in columns `kind, scope, a, b, c, t,
/// u`:
///
/// | kind | a | b | c | t | u |
/// | --- | --- | --- | --- | --- | --- |
/// | version | version | ids expired | | | |
/// | base | before | | | base | |
/// | change | cursor | group end | time | data | |
/// | client | seq | keep from | | client id | result |
/// | id | time | | | id | result |
///
/// Rows are found per scope through a key (`LATERAL ... OFFSET 0` keeps the
/// lookup from being flattened into a join), so the one plan PostgreSQL
/// makes for any arrays reads only what is new: a join over the arrays
/// would be planned as a merge join reading a scope's whole log.
pub(crate) const SQL: &str = "\
    SELECT 0::int2 AS kind, s.scope, s.version AS a, s.ids_expired AS b, NULL::int8 AS c,
           NULL::text AS t, NULL::text AS u
     FROM sync_scopes s WHERE s.scope = ANY($1::text[])
    UNION ALL
    SELECT 1::int2, b.scope, b.before, NULL::int8, NULL::int8, b.base, NULL::text
     FROM UNNEST($1::text[], $2::int8[]) AS h(scope, first_kept),
         LATERAL (SELECT * FROM sync_bases b
                  WHERE b.scope = h.scope AND b.before > h.first_kept OFFSET 0) AS b
    UNION ALL
    SELECT 2::int2, c.scope, c.cursor, c.group_end, c.time, c.data, NULL::text
     FROM UNNEST($1::text[], $3::int8[]) AS h(scope, head),
         LATERAL (SELECT * FROM sync_changes c
                  WHERE c.scope = h.scope AND c.cursor > h.head OFFSET 0) AS c
    UNION ALL
    SELECT 3::int2, c.scope, c.seq, c.keep_from, NULL::int8, c.client_id, c.result
     FROM UNNEST($1::text[], $4::int8[]) AS k(scope, known),
         LATERAL (SELECT * FROM sync_clients c
                  WHERE c.scope = k.scope AND c.version > k.known OFFSET 0) AS c
    UNION ALL
    SELECT 4::int2, i.scope, i.time, NULL::int8, NULL::int8, i.id, i.result
     FROM UNNEST($1::text[], $4::int8[]) AS k(scope, known),
         LATERAL (SELECT CASE WHEN s.ids_expired > k.known THEN -1 ELSE k.known END AS after
                  FROM sync_scopes s WHERE s.scope = k.scope OFFSET 0) AS s,
         LATERAL (SELECT * FROM sync_ids i
                  WHERE i.scope = k.scope AND i.version > s.after OFFSET 0) AS i";
