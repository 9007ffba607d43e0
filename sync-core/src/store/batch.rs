//! What one Ready hands to the store: every record that must become durable
//! together, and what a store hands back at start.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::{Change, MutationResult, Timestamp};

/// One change in the log together with its mutation boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The change (its `scope` and `cursor` are the primary key).
    pub change: Change,
    /// Cursor of the last change written by the same mutation. A pull page
    /// ends only where `change.cursor == group_end`, so one mutation's changes
    /// are never split.
    pub group_end: u64,
}

/// The stored outcome of one sequenced mutation: `(scope, client_id, seq)` is the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// Scope the sequence belongs to (client sequences are per scope).
    pub scope: String,
    /// The client.
    pub client_id: String,
    /// The sequence number; the client's last applied sequence is the highest.
    pub seq: u64,
    /// The result returned to the client and replayed on retries.
    pub result: MutationResult,
    /// Results of this client with a lower sequence than this may be dropped
    /// by the store; the engine never asks for them again.
    pub keep_from: u64,
}

/// The stored outcome of one mutation deduplicated by id (no `client_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdRecord {
    /// Scope of the mutation.
    pub scope: String,
    /// The mutation id.
    pub id: String,
    /// The result returned and replayed.
    pub result: MutationResult,
    /// When it was recorded; it expires after the engine's retention window.
    pub time: Timestamp,
}

/// An id record leaving the retention window. It names a record of an
/// earlier batch: a record made and expired within one batch is left out of
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdExpiry {
    /// Scope of the record.
    pub scope: String,
    /// The mutation id.
    pub id: String,
    /// The cursor of the last change the record's mutation wrote in this
    /// scope, if it wrote one: a store that keeps an id record on its
    /// mutation's last change row (as sync-sqlite does) finds it there
    /// without an index on ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
}

impl IdRecord {
    /// The cursor of the last change this record's mutation wrote in its
    /// scope, if it wrote one (see [`IdExpiry::cursor`]).
    pub fn last_change(&self) -> Option<u64> {
        self.result.last_change_in(&self.scope)
    }
}

impl ClientRecord {
    /// The cursor of the last change this record's mutation wrote in its
    /// scope, if it wrote one.
    pub fn last_change(&self) -> Option<u64> {
        self.result.last_change_in(&self.scope)
    }
}

/// A log trim: drop every change of `scope` with cursor `< before` and keep the
/// state as of cursor `before - 1` as the scope's base. A trim whose `before`
/// is not greater than the stored base's `before` must be ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trim {
    /// The scope.
    pub scope: String,
    /// First cursor kept.
    pub before: u64,
    /// [`crate::App::snapshot`] of the scope at cursor `before - 1`; recovery
    /// restores it and replays the remaining log on top.
    pub base: Value,
}

/// Everything one Ready asks the store to make durable, atomically: all of it
/// or none of it. Apply in this order: trims, expiries, changes, client
/// records, id records. Expiries come before id records because a mutation
/// retried after its id expired is recorded again in the same batch that
/// expires its old record; no expiry names a record of its own batch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Batch {
    /// New log entries, in cursor order within each scope.
    pub changes: Vec<LogEntry>,
    /// Client sequence records (insert; a later seq supersedes earlier ones).
    pub clients: Vec<ClientRecord>,
    /// Mutation-id records (insert).
    pub ids: Vec<IdRecord>,
    /// Id records to delete (before `ids` are written).
    pub expired_ids: Vec<IdExpiry>,
    /// Log trims.
    pub trims: Vec<Trim>,
    /// Scopes this batch writes nothing to but whose answers assumed the
    /// engine's view of them is current (see
    /// [`crate::EngineConfig::verify_sequence_gaps`]). A store shared by
    /// several writers checks them like the scopes it writes; a store that is
    /// the only writer ignores them.
    #[serde(default)]
    pub verify: Vec<String>,
}

impl Batch {
    /// Every scope the batch writes to, sorted (not those it only
    /// [`verify`](Batch::verify)s).
    pub fn written_scopes(&self) -> std::collections::BTreeSet<&str> {
        let mut s = std::collections::BTreeSet::new();
        s.extend(self.trims.iter().map(|t| t.scope.as_str()));
        s.extend(self.changes.iter().map(|e| e.change.scope.as_str()));
        s.extend(self.clients.iter().map(|c| c.scope.as_str()));
        s.extend(self.ids.iter().map(|r| r.scope.as_str()));
        s.extend(self.expired_ids.iter().map(|x| x.scope.as_str()));
        s
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.clients.is_empty()
            && self.ids.is_empty()
            && self.expired_ids.is_empty()
            && self.trims.is_empty()
            && self.verify.is_empty()
    }
}

/// The durable contents of one scope, as [`crate::Store::load`] returns them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScopeRecords {
    /// The scope.
    pub scope: String,
    /// The latest trim's base, if the scope was ever trimmed.
    pub base: Option<TrimBase>,
    /// Log entries after the base, in cursor order.
    pub changes: Vec<LogEntry>,
    /// Retained client records (at least the highest seq of each client).
    pub clients: Vec<ClientRecord>,
    /// Live id records.
    pub ids: Vec<IdRecord>,
}

/// A scope's state base left by a trim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrimBase {
    /// First cursor kept in the log (the base is the state at `before - 1`).
    pub before: u64,
    /// The snapshot value at `before - 1`.
    pub base: Value,
}

/// Everything a store holds, for [`crate::Engine::recover`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Recovered {
    /// One entry per scope that has any record.
    pub scopes: Vec<ScopeRecords>,
}
