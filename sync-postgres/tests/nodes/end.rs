//! How every run ends, once every node has heard of every commit: the
//! stored logs, every node (a node started afresh among them) and every
//! watching session agree with what was acknowledged.

use std::time::Instant;

use serde_json::json;
use sync_core::{Change, SnapshotResponse, Store};
use sync_postgres::{PgOptions, PgStore};

use crate::model::{Model, SCOPES};
use crate::node::Node;

/// Checks that each scope's stored log is the acknowledged one, that every
/// node answers the snapshot the acknowledged changes make, and that every
/// watching session was poked with each head. What the nodes did meanwhile
/// goes to `lines`.
pub(crate) fn check_end(
    model: &Model,
    nodes: &mut [Node],
    (url, options): (&str, PgOptions),
    now: Instant,
    lines: &mut Vec<String>,
) {
    for node in nodes.iter() {
        node.check_poked_heads(|scope| model.head(scope));
    }
    let mut reader = PgStore::connect(url, options).expect("connect");
    for scope in SCOPES {
        let records = reader.load_scope(scope).expect("load").unwrap_or_default();
        let first = records.base.as_ref().map_or(1, |b| b.before);
        let stored: Vec<&Change> = records.changes.iter().map(|e| &e.change).collect();
        model.check_stored(scope, first, &stored);
        let head = model.head(scope);
        let state = model.state_at(scope, head);
        for node in nodes.iter_mut() {
            let n = node.n;
            let body = json!({ "scope": scope });
            let ((status, answer), turn) = node.request(now, "/snapshot", &body);
            lines.extend(turn.lines);
            for (scope, cursor) in turn.pokes {
                model.check_poke(&scope, cursor);
            }
            let text = String::from_utf8_lossy(&answer);
            assert_eq!(status, 200, "node {n}: snapshot of {scope}: {text}");
            let snapshot: SnapshotResponse = serde_json::from_slice(&answer).expect("a snapshot");
            assert_eq!(snapshot.cursor, head, "node {n}: {scope}'s head");
            assert_eq!(snapshot.data, state, "node {n}: {scope}'s state");
        }
    }
}
