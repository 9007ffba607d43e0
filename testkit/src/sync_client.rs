//! Sync HTTP calls and the JSON shapes of the sync protocol, for the suite, the
//! crash driver and the load generator.

use http::Method;
use serde_json::{Value, json};

use crate::http_client::{HttpConn, HttpError, HttpResponse};

/// A sync client over one keep-alive HTTP connection, authenticated by bearer token.
pub struct SyncHttp {
    conn: HttpConn,
    prefix: String,
    token: Option<String>,
}

impl SyncHttp {
    /// A client of `base` (`http://host:port`) with the sync endpoints under
    /// `prefix` (e.g. `/_sync`), sending `Authorization: Bearer <token>` if given.
    pub fn new(base: &str, prefix: &str, token: Option<&str>) -> Result<Self, HttpError> {
        Ok(SyncHttp {
            conn: HttpConn::new(base)?,
            prefix: prefix.to_owned(),
            token: token.map(str::to_owned),
        })
    }

    /// Sends `method {prefix}{path}` with a raw body (`Content-Type: application/json`).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: impl Into<bytes::Bytes>,
    ) -> Result<HttpResponse, HttpError> {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let uri = format!("{}{}", self.prefix, path);
        self.conn.request(method, &uri, &headers, body).await
    }

    /// `POST {prefix}/push` with `body` as JSON (an object `{"mutations":[..]}` or a
    /// bare array).
    pub async fn push(&mut self, body: &Value) -> Result<HttpResponse, HttpError> {
        self.call(Method::POST, "/push", body.to_string()).await
    }

    /// `POST {prefix}/pull` `{"scope","cursor","limit"?}`.
    pub async fn pull(
        &mut self,
        scope: &str,
        cursor: u64,
        limit: Option<u64>,
    ) -> Result<HttpResponse, HttpError> {
        let mut body = json!({"scope": scope, "cursor": cursor});
        if let Some(l) = limit {
            body["limit"] = json!(l);
        }
        self.call(Method::POST, "/pull", body.to_string()).await
    }

    /// `GET {prefix}/pull?scope=&cursor=&limit=` (the integration guide's form).
    pub async fn pull_get(
        &mut self,
        scope: &str,
        cursor: u64,
        limit: Option<u64>,
    ) -> Result<HttpResponse, HttpError> {
        let mut q = format!("/pull?scope={}&cursor={cursor}", query_escape(scope));
        if let Some(l) = limit {
            q.push_str(&format!("&limit={l}"));
        }
        self.call(Method::GET, &q, bytes::Bytes::new()).await
    }

    /// `POST {prefix}/snapshot` `{"scope"}`.
    pub async fn snapshot(&mut self, scope: &str) -> Result<HttpResponse, HttpError> {
        self.call(
            Method::POST,
            "/snapshot",
            json!({"scope": scope}).to_string(),
        )
        .await
    }

    /// `GET {prefix}/snapshot?scope=`.
    pub async fn snapshot_get(&mut self, scope: &str) -> Result<HttpResponse, HttpError> {
        let q = format!("/snapshot?scope={}", query_escape(scope));
        self.call(Method::GET, &q, bytes::Bytes::new()).await
    }

    /// Pulls every change of `scope` after `cursor`, following `next_cursor` while
    /// `has_more`. Returns the changes, or the first non-200 response.
    pub async fn pull_all(
        &mut self,
        scope: &str,
        mut cursor: u64,
    ) -> Result<Vec<Value>, PullAllError> {
        let mut out = Vec::new();
        // Bounded: a server that keeps saying has_more without progress is a bug,
        // not a reason to loop forever.
        for _ in 0..100_000 {
            let r = self.pull(scope, cursor, Some(1000)).await?;
            if r.status != 200 {
                return Err(PullAllError::Status(r));
            }
            let j = r.json();
            let changes = j["changes"].as_array().cloned().unwrap_or_default();
            let next = j["next_cursor"].as_u64().unwrap_or(cursor);
            let more = j["has_more"].as_bool().unwrap_or(false);
            let progressed = next > cursor || !changes.is_empty();
            out.extend(changes);
            cursor = next;
            if !more {
                return Ok(out);
            }
            if !progressed {
                return Err(PullAllError::NoProgress(cursor));
            }
        }
        Err(PullAllError::NoProgress(cursor))
    }
}

/// Why [`SyncHttp::pull_all`] stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullAllError {
    /// No HTTP response.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A page answered with a non-200 status.
    #[error("pull answered {}: {}", .0.status, .0.text())]
    Status(HttpResponse),
    /// `has_more` without any progress of the cursor.
    #[error("pull reports has_more but does not advance past cursor {0}")]
    NoProgress(u64),
}

/// A key-value `put` mutation.
pub fn put(id: &str, scope: &str, key: &str, value: Value) -> Value {
    json!({"id": id, "scope": scope, "name": "put", "args": {"key": key, "value": value}})
}

/// A key-value `delete` mutation.
pub fn delete(id: &str, scope: &str, key: &str) -> Value {
    json!({"id": id, "scope": scope, "name": "delete", "args": {"key": key}})
}

/// The profile's `put_many` mutation (one change per entry).
pub fn put_many(id: &str, scope: &str, entries: &[(&str, Value)]) -> Value {
    let entries: Vec<Value> = entries
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    json!({"id": id, "scope": scope, "name": crate::profile::PUT_MANY, "args": {"entries": entries}})
}

/// Adds `client_id` and `seq` to a mutation.
pub fn with_client(mut m: Value, client_id: &str, seq: u64) -> Value {
    m["client_id"] = json!(client_id);
    m["seq"] = json!(seq);
    m
}

/// `{"mutations": [...]}`, mizu's push body.
pub fn push_body(mutations: &[Value]) -> Value {
    json!({ "mutations": mutations })
}

/// The value of `key` in a key-value snapshot's `data`.
///
/// The profile requires the built-in key-value app's snapshot to be a JSON object
/// from key to value; an array of `{"key","value"}` entries is tolerated.
pub fn kv_lookup<'a>(data: &'a Value, key: &str) -> Option<&'a Value> {
    match data {
        Value::Object(map) => map.get(key),
        Value::Array(items) => items.iter().find(|e| e["key"] == key).map(|e| &e["value"]),
        _ => None,
    }
}

/// Whether `v` contains the string `needle` anywhere (as a string value or an
/// object key, also inside a string that itself holds JSON).
///
/// The suite does not prescribe the key-value app's change format, only that each
/// put or delete of a key produces exactly one change mentioning the key; test
/// keys are unique, so this finds the changes of one mutation.
pub fn mentions(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => {
            s == needle
                || (s.starts_with(['{', '['])
                    && serde_json::from_str::<Value>(s).is_ok_and(|inner| mentions(&inner, needle)))
        }
        Value::Array(a) => a.iter().any(|x| mentions(x, needle)),
        Value::Object(o) => o.iter().any(|(k, x)| k == needle || mentions(x, needle)),
        _ => false,
    }
}

/// Percent-escapes a query value (scopes contain `:`).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_lookup_shapes() {
        let obj = json!({"a": 1, "b": {"x": 2}});
        assert_eq!(kv_lookup(&obj, "b"), Some(&json!({"x": 2})));
        assert_eq!(kv_lookup(&obj, "c"), None);
        let arr = json!([{"key": "a", "value": 3}]);
        assert_eq!(kv_lookup(&arr, "a"), Some(&json!(3)));
        assert_eq!(kv_lookup(&json!(null), "a"), None);
    }

    #[test]
    fn mentions_finds_keys_anywhere() {
        assert!(mentions(
            &json!({"op": "put", "key": "k1", "value": 1}),
            "k1"
        ));
        assert!(mentions(&json!({"k1": 1}), "k1"));
        assert!(mentions(&json!("{\"key\":\"k1\"}"), "k1"));
        assert!(!mentions(&json!({"key": "k10"}), "k1"));
        assert!(!mentions(&json!([1, 2, "x"]), "k1"));
    }

    #[test]
    fn builders() {
        let m = with_client(put("m1", "s", "k", json!(1)), "c", 3);
        assert_eq!(m["name"], "put");
        assert_eq!(m["args"]["key"], "k");
        assert_eq!(m["client_id"], "c");
        assert_eq!(m["seq"], 3);
        let b = push_body(std::slice::from_ref(&m));
        assert_eq!(b["mutations"][0], m);
        let pm = put_many("m2", "s", &[("a", json!(1)), ("b", json!(2))]);
        assert_eq!(pm["args"]["entries"][1]["key"], "b");
        assert_eq!(delete("m3", "s", "a")["name"], "delete");
    }

    #[test]
    fn escapes_scopes() {
        assert_eq!(query_escape("user:alice"), "user%3Aalice");
        assert_eq!(query_escape("a b&c"), "a%20b%26c");
    }
}
