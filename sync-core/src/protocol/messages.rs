//! The JSON messages of the sync protocol: mutations, results, changes and the
//! push / pull / snapshot requests and responses, field for field as go-mizu's
//! http transport writes them (plus the additions documented on each field).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Timestamp;

/// The scope used when a request names none.
pub const DEFAULT_SCOPE: &str = "_default";

/// A client's intent to change state: a command, not a patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mutation {
    /// Unique per mutation; the dedupe key for clients without `client_id`.
    pub id: String,
    /// The data partition; empty or absent means [`DEFAULT_SCOPE`]. Servers
    /// overwrite it with the authorized scope before the engine sees it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The mutator to run (`put`, `delete`, or an application's name).
    pub name: String,
    /// The mutator's arguments, any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// The originating client; with `seq`, enables ordered exactly-once apply.
    /// Read from `client` too: go-mizu's browser sync client names it so.
    #[serde(default, alias = "client", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client's contiguous sequence number (1, 2, 3, ...) within the scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl Mutation {
    /// The scope this mutation addresses, with the default applied.
    pub fn scope_or_default(&self) -> &str {
        if self.scope.is_empty() {
            DEFAULT_SCOPE
        } else {
            &self.scope
        }
    }
}

/// The outcome of one mutation. A replayed mutation gets its original result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutationResult {
    /// Whether the mutation was applied.
    pub ok: bool,
    /// The scope's cursor after this mutation (its last change's cursor).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cursor: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's [`super::ErrorCode`] wire string. `internal_error` means the
    /// mutation was not applied and not recorded: retry it. Any other code is a
    /// recorded, permanent rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The changes the mutation wrote, with their cursors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

impl MutationResult {
    /// The cursor of the last change this result carries, when that change
    /// is in `scope`: where a store may keep the mutation's record.
    pub fn last_change_in(&self, scope: &str) -> Option<u64> {
        self.changes
            .last()
            .filter(|c| c.scope == scope)
            .map(|c| c.cursor)
    }

    /// A failed result with `code` and message.
    pub fn failed(code: super::ErrorCode, error: impl Into<String>) -> Self {
        MutationResult {
            ok: false,
            cursor: 0,
            error: Some(error.into()),
            code: Some(code.as_str().to_owned()),
            changes: Vec::new(),
        }
    }

    /// True when this result says "not applied, not recorded, retry later".
    pub fn is_transient(&self) -> bool {
        !self.ok && self.code.as_deref() == Some(super::ErrorCode::Internal.as_str())
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn non_negative_or_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = i128::deserialize(d)?;
    Ok(u64::try_from(n).unwrap_or(if n < 0 { 0 } else { u64::MAX }))
}

/// One durable change in a scope's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Dense per scope: 1, 2, 3, ...
    pub cursor: u64,
    /// The scope whose log holds it.
    pub scope: String,
    /// When the server wrote it (passed in by the driver).
    pub time: Timestamp,
    /// Application-defined payload, embedded JSON.
    pub data: Value,
}

/// `POST /push` body. A bare JSON array of mutations is accepted too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The mutations, applied in order.
    pub mutations: Vec<Mutation>,
}

/// `POST /push` response: one result per mutation, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// The results.
    pub results: Vec<MutationResult>,
}

/// `POST /pull` body (or `GET ?scope=&cursor=&limit=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// The scope; empty means [`DEFAULT_SCOPE`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Return changes with cursor greater than this.
    #[serde(default)]
    pub cursor: u64,
    /// Maximum changes per page; 0 (or, as in go-mizu, a negative number)
    /// means the server default.
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "non_negative_or_zero"
    )]
    pub limit: u64,
    /// Addition: when set, the final page (`has_more: false`) reports this
    /// client's last applied sequence in `client_seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// `POST /pull` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    /// The changes, in cursor order; a page never splits one mutation's changes.
    pub changes: Vec<Change>,
    /// More changes exist after `next_cursor`.
    pub has_more: bool,
    /// The cursor to pull from next; the request's cursor when the page is empty.
    pub next_cursor: u64,
    /// Addition: the requesting client's last applied sequence in this scope,
    /// present only on the final page and only when `client_id` was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_seq: Option<u64>,
}

/// `POST /snapshot` body (or `GET ?scope=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRequest {
    /// The scope; empty means [`DEFAULT_SCOPE`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Addition: when set, the response reports this client's last applied
    /// sequence, read atomically with the data and cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// `POST /snapshot` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    /// The application's view of the scope (for the key-value app, an object).
    pub data: Value,
    /// The cursor the data reflects: pull from here to continue.
    pub cursor: u64,
    /// Addition: the requesting client's last applied sequence at `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_seq: Option<u64>,
}

/// The `data` of the poke the server publishes on `sync:<scope>` after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PokeData {
    /// The scope's durable head.
    pub cursor: u64,
}

/// The live topic on which the server pokes a scope: `sync:<scope>`.
/// Only the server may publish on it, and only users authorized for the scope
/// may subscribe (adapters enforce both with [`scope_of_poke_topic`]).
pub fn poke_topic(scope: &str) -> String {
    format!("sync:{scope}")
}

/// The scope a `sync:<scope>` topic belongs to, or `None` for other topics.
pub fn scope_of_poke_topic(topic: &str) -> Option<&str> {
    topic.strip_prefix("sync:")
}
