//! The connection batches are written on, kept out of the pool with its
//! prepared statements, and the scope locks it may hold from a refused
//! batch to the next one.
//!
//! Why hold them: a batch whose scopes another node wrote since this node
//! last read them cannot be written as computed (its cursors would collide).
//! Instead of rolling back and trying again, which another node can beat
//! every time, the transaction stays open with the scopes' rows locked, the
//! driver reads what it lacks (no one else can write those scopes now),
//! computes the batch again on top, and writes it in the same transaction.
//! Writers of one scope thus wait for each other in PostgreSQL, and a
//! refused batch is refused once at most.
//!
//! A node that nobody else writes beside sends each batch whole in one
//! flight (lock, check, write, commit); only after finding a scope written
//! elsewhere does it lock first and look before writing, until a batch
//! finds its scopes as it left them.

use std::collections::BTreeMap;

use deadpool_postgres::{Object, Pool};
use sync_core::Batch;
use sync_core::store::{ScopeDelta, ScopeMark};

use crate::write::{self, Statements};
use crate::{Error, delta};

/// The writing connection and what it holds.
#[derive(Default)]
pub(crate) struct Writer {
    conn: Option<(Object, Statements)>,
    /// A transaction is open on `conn` with these scopes' version rows
    /// locked, at these versions.
    held: Option<BTreeMap<String, i64>>,
    /// An operation on `conn` was cut short (an error or a timeout): it may
    /// be inside a transaction nobody tracks, so it is closed, not reused.
    unsure: bool,
    /// The last batch, when first sent, found a scope another node had
    /// written. While that holds, batches lock first and check after (two
    /// flights, a refusal keeps the locks); otherwise they are sent whole in
    /// one flight that aborts if a scope moved, then lock and check.
    contended: bool,
    /// What the refused scopes gained, read in the refusal's own flight,
    /// for the read of them that follows (see [`Writer::take_prefetched`]).
    prefetched: BTreeMap<String, Prefetched>,
}

/// A delta read while locking a scope, and what it was read after.
pub(crate) struct Prefetched {
    pub(crate) known: i64,
    pub(crate) held: ScopeMark,
    /// `None`: the stored version is behind the known one; only a full load
    /// can tell.
    pub(crate) delta: Option<(ScopeDelta, i64)>,
}

/// How to write one batch: the versions this node believes its scopes are
/// at, where the engine's records of them end (when known), the notice
/// channel and this node's name in notices, and how long an idle transaction
/// may hold locks.
pub(crate) struct Persist<'a> {
    pub(crate) known: &'a BTreeMap<String, i64>,
    pub(crate) marks: &'a BTreeMap<String, Option<ScopeMark>>,
    pub(crate) notice: (&'a str, &'a str),
    pub(crate) idle_limit: std::time::Duration,
}

impl Writer {
    /// Writes `batch` if every scope it touches is at the version this node
    /// knows; returns the written scopes' new versions. Otherwise returns
    /// [`Error::Stale`] and keeps the scopes locked in the open transaction,
    /// so the next call writes the batch computed again over what those
    /// scopes gained, without any other node in between; what they gained
    /// after `how.marks` is read in the same flight as the locks, and kept
    /// for [`Writer::take_prefetched`]. An empty batch releases what is
    /// held.
    pub(crate) async fn persist(
        &mut self,
        pool: &Pool,
        batch: &Batch,
        how: Persist<'_>,
    ) -> Result<Vec<(String, i64)>, Error> {
        let written = batch.written_scopes();
        let mut locked = written.clone();
        locked.extend(batch.verify.iter().map(String::as_str));
        let locked: Vec<&str> = locked.into_iter().collect();
        let fresh = fresh(&locked, how.known);
        self.prefetched.clear();
        if std::mem::take(&mut self.unsure) {
            self.close();
        }
        if batch.is_empty() {
            if self.held.is_some() {
                self.release().await?;
            }
            return Ok(Vec::new());
        }
        self.unsure = true;
        self.connect(pool, how.idle_limit).await?;
        let Some((conn, st)) = &self.conn else {
            return Err(Error::Config("no writing connection".into()));
        };
        let held = match self.held.take() {
            Some(held) if locked.iter().all(|s| held.contains_key(*s)) => Some(held),
            Some(_) => {
                conn.batch_execute("ROLLBACK").await?;
                None
            }
            None => None,
        };
        let first_look = held.is_none();
        let (versions, prefetched) = match held {
            Some(held) => (held, BTreeMap::new()),
            None => {
                if !self.contended {
                    // Uncontended so far: lock, check, write and commit in
                    // one flight, on the versions this node knows.
                    let known: Vec<i64> = locked
                        .iter()
                        .map(|s| how.known.get(*s).copied().unwrap_or(0))
                        .collect();
                    let stamp: BTreeMap<String, i64> = locked
                        .iter()
                        .zip(&known)
                        .filter(|(s, _)| written.contains(**s))
                        .map(|(s, v)| ((*s).to_owned(), v + 1))
                        .collect();
                    let expect = write::Expect {
                        scopes: &locked,
                        fresh: &fresh,
                        known: &known,
                    };
                    match write::write_and_commit(conn, st, batch, &stamp, how.notice, Some(expect))
                        .await
                    {
                        Ok(()) => {
                            self.unsure = false;
                            return Ok(stamp.into_iter().collect());
                        }
                        // Another node wrote first; the flight committed
                        // nothing: lock first and look.
                        Err(Error::Postgres(e))
                            if e.as_db_error().map(|d| d.code().code())
                                == Some(crate::schema::STALE_CODE) => {}
                        Err(e) => return Err(e),
                    }
                }
                let mark = |scope: &str| how.marks.get(scope).copied().flatten();
                lock_and_read(conn, st, &locked, &fresh, how.known, mark).await?
            }
        };
        let stale: Vec<String> = versions
            .iter()
            .filter(|(scope, version)| how.known.get(*scope).copied().unwrap_or(0) != **version)
            .map(|(scope, _)| scope.clone())
            .collect();
        if first_look {
            self.contended = !stale.is_empty();
        }
        if !stale.is_empty() {
            self.prefetched = prefetched;
            self.held = Some(versions);
            self.unsure = false;
            return Err(Error::Stale { scopes: stale });
        }
        let bumped: BTreeMap<String, i64> = versions
            .into_iter()
            .filter(|(scope, _)| written.contains(scope.as_str()))
            .map(|(scope, version)| (scope, version + 1))
            .collect();
        write::write_and_commit(conn, st, batch, &bumped, how.notice, None).await?;
        self.unsure = false;
        Ok(bumped.into_iter().collect())
    }

    /// Begins a transaction that locks `scopes` for the next batch, and
    /// reads in the same flight what they gained after the marks given,
    /// for [`Writer::take_prefetched`]. Whatever was held is let go first.
    pub(crate) async fn lock(
        &mut self,
        pool: &Pool,
        scopes: &[(String, Option<ScopeMark>)],
        known: &BTreeMap<String, i64>,
        idle_limit: std::time::Duration,
    ) -> Result<(), Error> {
        self.prefetched.clear();
        if std::mem::take(&mut self.unsure) {
            self.close();
        }
        if self.held.is_some() {
            self.release().await?;
        }
        let mut locked: Vec<&str> = scopes.iter().map(|(s, _)| s.as_str()).collect();
        locked.sort_unstable();
        locked.dedup();
        if locked.is_empty() {
            return Ok(());
        }
        let fresh = fresh(&locked, known);
        self.unsure = true;
        self.connect(pool, idle_limit).await?;
        let Some((conn, st)) = &self.conn else {
            return Err(Error::Config("no writing connection".into()));
        };
        let mark = |scope: &str| {
            scopes
                .iter()
                .find(|(s, _)| s == scope)
                .and_then(|(_, m)| *m)
        };
        let (versions, prefetched) = lock_and_read(conn, st, &locked, &fresh, known, mark).await?;
        self.prefetched = prefetched;
        self.held = Some(versions);
        self.contended = true;
        self.unsure = false;
        Ok(())
    }

    /// The deltas read with the locks of the last refused batch, while its
    /// transaction still holds them (they are all there is to catch up on);
    /// taken once.
    pub(crate) fn take_prefetched(&mut self) -> BTreeMap<String, Prefetched> {
        if self.held.is_none() {
            self.prefetched.clear();
        }
        std::mem::take(&mut self.prefetched)
    }

    /// Ends a held transaction, letting other nodes write its scopes.
    async fn release(&mut self) -> Result<(), Error> {
        self.held = None;
        if let Some((conn, _)) = &self.conn {
            self.unsure = true;
            conn.batch_execute("ROLLBACK").await?;
            self.unsure = false;
        }
        Ok(())
    }

    /// A live connection with its statements, from the pool when there is
    /// none. A transaction open on a lost connection is gone with it. The
    /// store calls it once when it connects; batches call it again after
    /// losing the connection.
    pub(crate) async fn connect(
        &mut self,
        pool: &Pool,
        idle_limit: std::time::Duration,
    ) -> Result<(), Error> {
        if self.conn.as_ref().is_some_and(|(c, _)| !c.is_closed()) {
            return Ok(());
        }
        self.close();
        let conn = pool.get().await?;
        conn.batch_execute(&write::session_settings(idle_limit))
            .await?;
        let st = Statements::prepare(&conn).await?;
        self.conn = Some((conn, st));
        Ok(())
    }

    /// Drops the connection out of the pool (closing it ends any transaction
    /// and its locks) and forgets what it held.
    fn close(&mut self) {
        self.held = None;
        self.prefetched.clear();
        if let Some((conn, _)) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}

/// Begins a transaction that locks `locked` (sorted; `fresh` may have no
/// version row yet), and reads in the same flight what those this node
/// holds a version (`known`) and a `mark` of gained since: returns the
/// scopes' versions and those deltas, for [`Writer::take_prefetched`].
async fn lock_and_read(
    conn: &tokio_postgres::Client,
    st: &Statements,
    locked: &[&str],
    fresh: &[&str],
    known: &BTreeMap<String, i64>,
    mark: impl Fn(&str) -> Option<ScopeMark>,
) -> Result<(BTreeMap<String, i64>, BTreeMap<String, Prefetched>), Error> {
    let wanted: Vec<delta::Wanted<'_>> = locked
        .iter()
        .filter_map(|scope| delta::Wanted::of(scope, known, mark(scope)))
        .collect();
    let cols = delta::Columns::of(&wanted)?;
    let reads = (!wanted.is_empty()).then_some(&cols);
    let (versions, rows) = write::begin_and_lock(conn, st, locked, fresh, reads).await?;
    let Some(rows) = rows else {
        return Ok((versions, BTreeMap::new()));
    };
    let deltas = delta::assemble(&wanted, rows)?;
    let prefetched = wanted
        .iter()
        .zip(deltas)
        .map(|(w, delta)| {
            let p = Prefetched {
                known: w.known,
                held: w.held,
                delta,
            };
            (w.scope.to_owned(), p)
        })
        .collect();
    Ok((versions, prefetched))
}

/// Of the scopes to lock, those that may have no version row yet (a scope
/// this node saw written has one).
fn fresh<'a>(locked: &[&'a str], known: &BTreeMap<String, i64>) -> Vec<&'a str> {
    locked
        .iter()
        .copied()
        .filter(|s| known.get(*s).is_none_or(|v| *v <= 0))
        .collect()
}
