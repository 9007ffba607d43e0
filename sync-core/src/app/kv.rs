//! The built-in JSON key-value application: per scope, a map from string keys
//! to JSON values, changed by patch-like changes (`{"op":"put",..}` /
//! `{"op":"del",..}`) as in Replicache's pull patches.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{App, AppError};
use crate::protocol::Mutation;

/// The state of one scope: key -> value, ordered so snapshots are deterministic.
pub type KvState = BTreeMap<String, Value>;

/// A named mutator: reads the scope's state and the mutation, returns the
/// change payloads (build them with [`KvApp::put_change`] / [`KvApp::del_change`]).
pub type Mutator = Arc<dyn Fn(&KvState, &Mutation) -> Result<Vec<Value>, AppError> + Send + Sync>;

/// Key-value app with the generic mutators `put {"key","value"}` and
/// `delete {"key"}`, plus mutators an application registers by name.
#[derive(Clone, Default)]
pub struct KvApp {
    mutators: BTreeMap<String, Mutator>,
}

impl fmt::Debug for KvApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvApp")
            .field("mutators", &self.mutators.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KvApp {
    /// An app with only `put` and `delete`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the mutator `name`. `put` and `delete` may be
    /// overridden this way too.
    pub fn register<F>(&mut self, name: impl Into<String>, mutator: F) -> &mut Self
    where
        F: Fn(&KvState, &Mutation) -> Result<Vec<Value>, AppError> + Send + Sync + 'static,
    {
        self.mutators.insert(name.into(), Arc::new(mutator));
        self
    }

    /// Builder form of [`KvApp::register`].
    pub fn with<F>(mut self, name: impl Into<String>, mutator: F) -> Self
    where
        F: Fn(&KvState, &Mutation) -> Result<Vec<Value>, AppError> + Send + Sync + 'static,
    {
        self.register(name, mutator);
        self
    }

    /// The change payload that sets `key` to `value`.
    pub fn put_change(key: &str, value: Value) -> Value {
        json!({"op": "put", "key": key, "value": value})
    }

    /// The change payload that removes `key`.
    pub fn del_change(key: &str) -> Value {
        json!({"op": "del", "key": key})
    }

    /// The `key` string argument of a mutation, or an `invalid_mutation` error.
    pub fn key_arg(mutation: &Mutation) -> Result<&str, AppError> {
        match mutation.args.as_ref().and_then(|a| a.get("key")) {
            Some(Value::String(k)) if !k.is_empty() => Ok(k),
            _ => Err(AppError::invalid("args.key must be a non-empty string")),
        }
    }
}

impl App for KvApp {
    type State = KvState;

    fn apply(&self, state: &KvState, mutation: &Mutation) -> Result<Vec<Value>, AppError> {
        if let Some(m) = self.mutators.get(&mutation.name) {
            return m(state, mutation);
        }
        match mutation.name.as_str() {
            "put" => {
                let key = Self::key_arg(mutation)?;
                let value = mutation
                    .args
                    .as_ref()
                    .and_then(|a| a.get("value"))
                    .cloned()
                    .ok_or_else(|| AppError::invalid("args.value is required"))?;
                Ok(vec![Self::put_change(key, value)])
            }
            "delete" => {
                let key = Self::key_arg(mutation)?;
                if state.contains_key(key) {
                    Ok(vec![Self::del_change(key)])
                } else {
                    Ok(Vec::new())
                }
            }
            other => Err(AppError::invalid(format!("unknown mutator {other:?}"))),
        }
    }

    fn absorb(&self, state: &mut KvState, change: &Value) {
        let key = match change.get("key").and_then(Value::as_str) {
            Some(k) => k,
            None => return,
        };
        match change.get("op").and_then(Value::as_str) {
            Some("put") => {
                let value = change.get("value").cloned().unwrap_or(Value::Null);
                state.insert(key.to_owned(), value);
            }
            Some("del") => {
                state.remove(key);
            }
            _ => {}
        }
    }

    fn snapshot(&self, state: &KvState) -> Value {
        let map: Map<String, Value> = state.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Value::Object(map)
    }

    fn snapshot_json(&self, state: &KvState) -> Vec<u8> {
        // A BTreeMap<String, Value> serializes as the same JSON object.
        serde_json::to_vec(state).unwrap_or_else(|_| b"{}".to_vec())
    }

    fn restore(&self, snapshot: &Value) -> Result<KvState, AppError> {
        match snapshot {
            Value::Object(map) => Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            Value::Null => Ok(KvState::new()),
            _ => Err(AppError::invalid(
                "key-value snapshot must be a JSON object",
            )),
        }
    }
}
