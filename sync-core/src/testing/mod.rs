//! Test support shared by this crate's tests and the fuzz targets (feature
//! `testing`): the application the tests run, and the seeded simulator. Not part
//! of the stable API.

mod decisions;
pub mod simulation;

pub use decisions::Decisions;

use serde_json::{Value, json};

use crate::store::{Recovered, ScopeRecords};
use crate::{AppError, ErrorCode, KvApp};

/// A key-value app with an `incr {"key"}` mutator (not idempotent, so double
/// application shows), a `fail {"transient": bool}` mutator and a `pair {"key"}`
/// mutator writing two keys in one mutation.
pub fn app() -> KvApp {
    KvApp::new()
        .with("incr", |state, m| {
            let key = KvApp::key_arg(m)?;
            let n = state.get(key).and_then(Value::as_i64).unwrap_or(0);
            Ok(vec![KvApp::put_change(key, json!(n + 1))])
        })
        .with("fail", |_, m| {
            if m.args.as_ref().and_then(|a| a.get("transient")) == Some(&json!(true)) {
                Err(AppError::transient("backend down"))
            } else {
                Err(AppError::permanent(ErrorCode::Conflict, "refused"))
            }
        })
        .with("pair", |_, m| {
            let key = KvApp::key_arg(m)?;
            Ok(vec![
                KvApp::put_change(&format!("{key}/a"), json!(1)),
                KvApp::put_change(&format!("{key}/b"), json!(2)),
            ])
        })
}

/// What a store loaded, in one order whatever the store: stores may order one
/// scope's records differently and may keep an empty scope or not, and
/// neither changes what the engine recovers. The store contract tests compare
/// stores through it.
pub fn normalize(mut r: Recovered) -> Vec<ScopeRecords> {
    r.scopes.retain(|s| {
        s.base.is_some() || !s.changes.is_empty() || !s.clients.is_empty() || !s.ids.is_empty()
    });
    for s in &mut r.scopes {
        s.clients
            .sort_by(|a, b| (&a.client_id, a.seq).cmp(&(&b.client_id, b.seq)));
        s.ids.sort_by(|a, b| a.id.cmp(&b.id));
    }
    r.scopes.sort_by(|a, b| a.scope.cmp(&b.scope));
    r.scopes
}
