//! What another writer added to a scope after what an engine holds: the
//! records a shared store hands back so a scope can be brought up to date
//! without reading and rebuilding it whole.
//!
//! A full reload costs the whole log; a delta costs what was written since.
//! Whether a delta can be applied is decided here, from the delta and the
//! [`ScopeMark`] of what is held, so a driver can fall back to a full load
//! before touching the engine ([`refresh_scope`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ClientRecord, IdRecord, LogEntry, ScopeRecords, Store, TrimBase};

/// Where the durable records an engine holds of one scope end: what a
/// store's delta must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeMark {
    /// The durable head cursor (0 when the log is empty and was never
    /// trimmed).
    pub head: u64,
    /// The first cursor kept in the log (1 when never trimmed). A trim base
    /// at cursor 1, which drops nothing and which no engine writes, is not
    /// told apart from none.
    pub first_kept: u64,
}

impl Default for ScopeMark {
    fn default() -> Self {
        ScopeMark {
            head: 0,
            first_kept: 1,
        }
    }
}

/// A scope's records written after a [`ScopeMark`] (and after the store's
/// own record of what it handed out last, such as a version).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScopeDelta {
    /// The scope.
    pub scope: String,
    /// What the delta was read after.
    pub after: ScopeMark,
    /// The trim base, when another writer trimmed past `after.first_kept`.
    /// Such a delta does not apply: the changes it would need are gone.
    pub base: Option<TrimBase>,
    /// Log entries with a cursor after `after.head`, in cursor order.
    pub changes: Vec<LogEntry>,
    /// Client records written or replaced since (a store may include
    /// records that did not change).
    pub clients: Vec<ClientRecord>,
    /// Id records written or replaced since; every live one when
    /// `ids_complete`.
    pub ids: Vec<IdRecord>,
    /// True when another writer expired id records: `ids` then holds every
    /// live id record of the scope and replaces what is held, since a store
    /// cannot list rows it deleted.
    pub ids_complete: bool,
}

/// Why a [`ScopeDelta`] cannot be applied to what is held; the scope must be
/// loaded whole instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaMismatch {
    /// The delta was read after another mark than the one held.
    #[error(
        "the delta follows head {delta_head} (log from {delta_first}), the holder is at head {head} (log from {first_kept})"
    )]
    OtherMark {
        /// The delta's `after.head`.
        delta_head: u64,
        /// The delta's `after.first_kept`.
        delta_first: u64,
        /// The held head.
        head: u64,
        /// The held first kept cursor.
        first_kept: u64,
    },
    /// Another writer trimmed the log.
    #[error("another writer trimmed the log to cursor {before} (held from {first_kept})")]
    Trimmed {
        /// The new first kept cursor.
        before: u64,
        /// The held first kept cursor.
        first_kept: u64,
    },
    /// The new changes do not continue the held log densely.
    #[error("change {cursor} does not follow cursor {previous}")]
    Gap {
        /// The cursor that should have been `previous + 1`.
        cursor: u64,
        /// The cursor before it.
        previous: u64,
    },
    /// A record of another scope.
    #[error("a record of scope {found:?} in the delta of {scope:?}")]
    OtherScope {
        /// The delta's scope.
        scope: String,
        /// The record's scope.
        found: String,
    },
}

impl ScopeDelta {
    /// An empty delta of `scope` after `after`: nothing was written since.
    pub fn empty(scope: impl Into<String>, after: ScopeMark) -> Self {
        ScopeDelta {
            scope: scope.into(),
            after,
            ..ScopeDelta::default()
        }
    }

    /// True when the delta adds nothing.
    pub fn is_empty(&self) -> bool {
        self.base.is_none()
            && self.changes.is_empty()
            && self.clients.is_empty()
            && self.ids.is_empty()
            && !self.ids_complete
    }

    /// Checks that the delta applies to the records ending at `held`: read
    /// after that mark, no trim since, changes continuing the log densely,
    /// every record of this scope.
    pub fn follows(&self, held: ScopeMark) -> Result<(), DeltaMismatch> {
        if self.after != held {
            return Err(DeltaMismatch::OtherMark {
                delta_head: self.after.head,
                delta_first: self.after.first_kept,
                head: held.head,
                first_kept: held.first_kept,
            });
        }
        if let Some(b) = &self.base {
            if b.before.max(1) != held.first_kept {
                return Err(DeltaMismatch::Trimmed {
                    before: b.before,
                    first_kept: held.first_kept,
                });
            }
        }
        let mut previous = held.head;
        for e in &self.changes {
            if e.change.cursor != previous.saturating_add(1) {
                return Err(DeltaMismatch::Gap {
                    cursor: e.change.cursor,
                    previous,
                });
            }
            previous = e.change.cursor;
        }
        let scopes = self
            .changes
            .iter()
            .map(|e| &e.change.scope)
            .chain(self.clients.iter().map(|c| &c.scope))
            .chain(self.ids.iter().map(|r| &r.scope));
        for found in scopes {
            if *found != self.scope {
                return Err(DeltaMismatch::OtherScope {
                    scope: self.scope.clone(),
                    found: found.clone(),
                });
            }
        }
        Ok(())
    }
}

impl ScopeRecords {
    /// Records of `scope` with nothing in them.
    pub fn empty(scope: impl Into<String>) -> Self {
        ScopeRecords {
            scope: scope.into(),
            ..ScopeRecords::default()
        }
    }

    /// Where these records end.
    pub fn mark(&self) -> ScopeMark {
        let first_kept = self.base.as_ref().map_or(1, |b| b.before.max(1));
        ScopeMark {
            head: self
                .changes
                .last()
                .map_or(first_kept - 1, |e| e.change.cursor),
            first_kept,
        }
    }

    /// Adds `delta` the way a store writes the same records: changes
    /// appended, client records upserted and each client's results below a
    /// new record's `keep_from` dropped, id records upserted (or replaced
    /// whole when `ids_complete`). Clients end sorted by client and
    /// sequence, ids by id, as stores load them. Nothing changes on `Err`.
    pub fn apply_delta(&mut self, delta: &ScopeDelta) -> Result<(), DeltaMismatch> {
        if delta.scope != self.scope {
            return Err(DeltaMismatch::OtherScope {
                scope: self.scope.clone(),
                found: delta.scope.clone(),
            });
        }
        delta.follows(self.mark())?;
        self.changes.extend(delta.changes.iter().cloned());

        let mut clients: BTreeMap<(String, u64), ClientRecord> = std::mem::take(&mut self.clients)
            .into_iter()
            .map(|c| ((c.client_id.clone(), c.seq), c))
            .collect();
        for c in &delta.clients {
            clients.insert((c.client_id.clone(), c.seq), c.clone());
        }
        let mut keep_from: BTreeMap<&str, u64> = BTreeMap::new();
        for c in &delta.clients {
            let k = keep_from.entry(c.client_id.as_str()).or_default();
            *k = (*k).max(c.keep_from);
        }
        clients.retain(|(client, seq), _| {
            keep_from
                .get(client.as_str())
                .is_none_or(|&from| *seq >= from)
        });
        self.clients = clients.into_values().collect();

        let mut ids: BTreeMap<String, IdRecord> = if delta.ids_complete {
            BTreeMap::new()
        } else {
            std::mem::take(&mut self.ids)
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect()
        };
        for r in &delta.ids {
            ids.insert(r.id.clone(), r.clone());
        }
        self.ids = ids.into_values().collect();
        Ok(())
    }
}

/// What a store hands back for bringing one scope up to date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScopeUpdate {
    /// Every record of the scope: rebuild it ([`crate::Engine::reload_scope`]).
    Full(ScopeRecords),
    /// What was written after the held mark
    /// ([`crate::Engine::apply_scope_delta`]).
    Delta(ScopeDelta),
}

impl ScopeUpdate {
    /// The scope it updates.
    pub fn scope(&self) -> &str {
        match self {
            ScopeUpdate::Full(r) => &r.scope,
            ScopeUpdate::Delta(d) => &d.scope,
        }
    }
}

/// Reads what `store` holds of `scope` beyond `held` (the engine's
/// [`crate::Engine::scope_mark`]): a delta when the store can give one that
/// applies, every record otherwise (the scope is unknown to the engine,
/// another writer trimmed it, or the store has no delta to give). What a
/// driver calls for a scope another writer changed.
pub fn refresh_scope<S: Store + ?Sized>(
    store: &mut S,
    scope: &str,
    held: Option<ScopeMark>,
) -> Result<ScopeUpdate, S::Error> {
    if let Some(held) = held {
        match store.load_scope_since(scope, held)? {
            ScopeUpdate::Delta(delta) if delta.follows(held).is_err() => {}
            update => return Ok(update),
        }
    }
    load_whole(store, scope)
}

/// [`refresh_scope`] for several scopes, with the deltas read together
/// ([`Store::load_scopes_since`]); the updates in the order given.
pub fn refresh_scopes<S: Store + ?Sized>(
    store: &mut S,
    scopes: &[(String, Option<ScopeMark>)],
) -> Result<Vec<ScopeUpdate>, S::Error> {
    let held: Vec<(&str, ScopeMark)> = scopes
        .iter()
        .filter_map(|(scope, held)| held.map(|h| (scope.as_str(), h)))
        .collect();
    let mut deltas = store.load_scopes_since(&held)?.into_iter();
    let mut out = Vec::with_capacity(scopes.len());
    for (scope, held) in scopes {
        let update = match held {
            Some(held) => match deltas.next() {
                Some(ScopeUpdate::Delta(delta)) if delta.follows(*held).is_err() => None,
                update => update,
            },
            None => None,
        };
        out.push(match update {
            Some(update) => update,
            None => load_whole(store, scope)?,
        });
    }
    Ok(out)
}

/// Every record `store` holds of `scope`, as an update (empty records when it
/// holds none): the answer when no delta can be given.
pub fn load_whole<S: Store + ?Sized>(store: &mut S, scope: &str) -> Result<ScopeUpdate, S::Error> {
    let records = store.load_scope(scope)?;
    Ok(ScopeUpdate::Full(
        records.unwrap_or_else(|| ScopeRecords::empty(scope)),
    ))
}
