//! The conformance profile: the configuration and hook behaviour a server must have
//! while the conformance suite runs against it.
//!
//! The suite is black-box, so it can only test behaviour it can predict. This module
//! is the single place that says what to predict: limits as numbers in [`Profile`],
//! and the hooks (authentication, origin, topic and scope rules, on-message) as pure
//! functions over `http` types that an adapter's test harness calls from its own
//! hooks. Implementing the hooks by calling these functions keeps every adapter's
//! harness identical to the suite's expectations.

use http::HeaderMap;
use serde_json::{Value, json};

/// The only origin a browser may connect from under the profile.
pub const ALLOWED_ORIGIN: &str = "http://allowed.test";

/// The token value that authentication always refuses.
pub const DENY_TOKEN: &str = "deny";

/// The scope every authenticated user may use besides their own.
pub const SHARED_SCOPE: &str = "shared";

/// Publications the profile's history topics keep.
pub const HISTORY_SIZE: usize = 5;

/// Publications the profile's `long:*` topics keep: several send queues'
/// worth, so a full replay cannot be queued at once.
pub const LONG_HISTORY_SIZE: usize = 300;

/// Limits and paths of the conformance profile.
///
/// The server under test must be configured with exactly these values; the suite
/// reads them from the same struct so the two cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// WebSocket endpoint path.
    pub ws_path: &'static str,
    /// Prefix of the sync HTTP endpoints (`{prefix}/push`, `/pull`, `/snapshot`).
    pub sync_prefix: &'static str,
    /// Allowed browser origins (exact match). A request without `Origin` is allowed.
    pub allowed_origins: &'static [&'static str],
    /// Largest accepted WebSocket message in bytes; bigger closes with 1009.
    pub read_limit: usize,
    /// Per-session send queue bound in messages.
    pub send_queue_messages: usize,
    /// Per-session send queue bound in bytes.
    pub send_queue_bytes: usize,
    /// Largest accepted sync HTTP body in bytes; bigger gets 413 `payload_too_large`.
    pub http_body_limit: usize,
    /// Most mutations in one push; more gets 400 `invalid_mutation`.
    pub push_batch_max: usize,
    /// Pull page size when the request names none.
    pub pull_limit_default: usize,
    /// Largest pull page; a bigger requested limit is capped to it.
    pub pull_limit_max: usize,
    /// Topics that keep a history, as `(pattern, size)` rules without a TTL
    /// (`*` matches any characters); other topics keep none.
    pub history: &'static [(&'static str, usize)],
}

impl Profile {
    /// The profile every conformance case runs with.
    pub const fn conformance() -> Self {
        Profile {
            ws_path: "/ws",
            sync_prefix: "/_sync",
            allowed_origins: &[ALLOWED_ORIGIN],
            read_limit: 64 * 1024,
            send_queue_messages: 64,
            send_queue_bytes: 256 * 1024,
            http_body_limit: 1024 * 1024,
            push_batch_max: 100,
            pull_limit_default: 100,
            pull_limit_max: 1000,
            history: &[("hist:*", HISTORY_SIZE), ("long:*", LONG_HISTORY_SIZE)],
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile::conformance()
    }
}

/// Why authentication refused a request; both map to HTTP 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRejection {
    /// No token in the header, the query or the cookie.
    MissingToken,
    /// The token was `deny`.
    Denied,
}

/// Finds the token of a request: `Authorization: Bearer T`, then the query
/// parameter `token=T`, then the cookie `token=T`.
///
/// `query` is the raw query string of the request URI, without the `?`.
pub fn token_from_request(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let from_header = headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("Bearer ").map(str::trim))
        .filter(|t| !t.is_empty());
    if let Some(t) = from_header {
        return Some(t.to_owned());
    }
    let from_query = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|t| !t.is_empty());
    if let Some(t) = from_query {
        return Some(percent_decode(t));
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("token=").map(str::to_owned))
        .filter(|t| !t.is_empty())
}

/// Authenticates a request: the user name is the token itself, `deny` and a
/// missing token are refused (401 on the upgrade and on sync HTTP).
pub fn authenticate(headers: &HeaderMap, query: Option<&str>) -> Result<String, AuthRejection> {
    match token_from_request(headers, query) {
        None => Err(AuthRejection::MissingToken),
        Some(t) if t == DENY_TOKEN => Err(AuthRejection::Denied),
        Some(t) => Ok(t),
    }
}

/// Origin policy: no `Origin` header (a non-browser client) or one of
/// [`Profile::allowed_origins`]; anything else is refused with 403.
pub fn origin_allowed(profile: &Profile, origin: Option<&str>) -> bool {
    match origin {
        None => true,
        Some(o) => profile.allowed_origins.contains(&o),
    }
}

/// Scope rule: user `U` may use `user:U` and [`SHARED_SCOPE`], nothing else (not
/// even the default scope `_default`, so a mutation or pull without a scope is 403).
pub fn scope_allowed(user: &str, scope: &str) -> bool {
    scope == SHARED_SCOPE || scope.strip_prefix("user:") == Some(user)
}

/// Topic rule for the built-in `subscribe` command.
///
/// `private:<U>` only for user `U`; `sync:<scope>` only if [`scope_allowed`];
/// everything else (including `readonly:*`) is open.
pub fn may_subscribe(user: &str, topic: &str) -> bool {
    if let Some(owner) = topic.strip_prefix("private:") {
        return owner == user;
    }
    if let Some(scope) = topic.strip_prefix("sync:") {
        return scope_allowed(user, scope);
    }
    true
}

/// Topic rule for the built-in `publish` command: never on `readonly:*` or
/// `sync:*` (pokes come from the server alone), `private:<U>` only for `U`.
pub fn may_publish(user: &str, topic: &str) -> bool {
    if topic.starts_with("readonly:") || topic.starts_with("sync:") {
        return false;
    }
    if let Some(owner) = topic.strip_prefix("private:") {
        return owner == user;
    }
    true
}

/// What the profile's on-message handler sends back to the sender of a message
/// that is not a built-in command.
///
/// Topics starting with `_` are reserved for the server (`_sync` is the sync
/// operations over the WebSocket); any other reserved topic is answered with an
/// error frame of code `unknown_command`. Every other message is echoed as
/// `{"topic":"echo","data":<the original envelope>}`.
pub fn on_message_reply(topic: &str, data: &Value) -> Value {
    if topic.starts_with('_') {
        return error_frame("unknown_command", &format!("unknown command {topic}"));
    }
    json!({"topic": "echo", "data": {"topic": topic, "data": data}})
}

/// An error frame in the live wire format.
pub fn error_frame(code: &str, message: &str) -> Value {
    json!({"topic": "error", "data": {"code": code, "message": message}})
}

/// The application mutator the profile registers beside the built-in key-value
/// app's `put` and `delete`: `put_many {"entries":[{"key","value"}, ...]}` puts every
/// entry in order, one change per entry, all in one mutation. It exists so the
/// suite can check that a pull page never splits one mutation's changes.
pub const PUT_MANY: &str = "put_many";

/// The entries of a `put_many` mutation's args, in order, or why they are
/// unusable (which the harness should report as a permanent mutation error).
pub fn put_many_entries(args: &Value) -> Result<Vec<(String, Value)>, String> {
    let entries = args
        .get("entries")
        .and_then(Value::as_array)
        .ok_or("put_many needs an `entries` array")?;
    if entries.is_empty() {
        return Err("put_many needs at least one entry".into());
    }
    entries
        .iter()
        .map(
            |e| match (e.get("key").and_then(Value::as_str), e.get("value")) {
                (Some(k), Some(v)) => Ok((k.to_owned(), v.clone())),
                _ => Err(format!(
                    "put_many entry needs a string `key` and a `value`: {e}"
                )),
            },
        )
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn token_sources_in_order() {
        let h = headers(&[("authorization", "Bearer alice"), ("cookie", "token=carol")]);
        assert_eq!(
            token_from_request(&h, Some("token=bob")).as_deref(),
            Some("alice")
        );
        let h = headers(&[("cookie", "a=1; token=carol")]);
        assert_eq!(
            token_from_request(&h, Some("x=1&token=bob")).as_deref(),
            Some("bob")
        );
        assert_eq!(token_from_request(&h, None).as_deref(), Some("carol"));
        assert_eq!(token_from_request(&HeaderMap::new(), Some("x=1")), None);
        assert_eq!(
            token_from_request(&HeaderMap::new(), Some("token=a%20b")).as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn deny_and_missing_are_rejected() {
        let h = headers(&[("authorization", "Bearer deny")]);
        assert_eq!(authenticate(&h, None), Err(AuthRejection::Denied));
        assert_eq!(
            authenticate(&HeaderMap::new(), None),
            Err(AuthRejection::MissingToken)
        );
        let h = headers(&[("authorization", "Basic abc")]);
        assert_eq!(authenticate(&h, None), Err(AuthRejection::MissingToken));
        assert_eq!(
            authenticate(&HeaderMap::new(), Some("token=bob")),
            Ok("bob".into())
        );
    }

    #[test]
    fn origins() {
        let p = Profile::conformance();
        assert!(origin_allowed(&p, None));
        assert!(origin_allowed(&p, Some("http://allowed.test")));
        assert!(!origin_allowed(&p, Some("http://allowed.test.evil")));
        assert!(!origin_allowed(&p, Some("https://allowed.test")));
    }

    #[test]
    fn scopes_and_topics() {
        assert!(scope_allowed("alice", "user:alice"));
        assert!(scope_allowed("alice", "shared"));
        assert!(!scope_allowed("alice", "user:bob"));
        assert!(!scope_allowed("alice", "_default"));
        assert!(may_subscribe("alice", "private:alice"));
        assert!(!may_subscribe("alice", "private:bob"));
        assert!(may_subscribe("alice", "readonly:news"));
        assert!(may_subscribe("alice", "sync:shared"));
        assert!(!may_subscribe("alice", "sync:user:bob"));
        assert!(may_subscribe("alice", "chat"));
        assert!(!may_publish("alice", "readonly:news"));
        assert!(!may_publish("alice", "sync:user:alice"));
        assert!(!may_publish("alice", "private:bob"));
        assert!(may_publish("alice", "chat"));
    }

    #[test]
    fn put_many_args() {
        let args = json!({"entries": [{"key": "a", "value": 1}, {"key": "b", "value": null}]});
        assert_eq!(
            put_many_entries(&args),
            Ok(vec![
                ("a".to_owned(), json!(1)),
                ("b".to_owned(), Value::Null)
            ])
        );
        assert!(put_many_entries(&json!({"entries": []})).is_err());
        assert!(put_many_entries(&json!({"entries": [{"key": 1, "value": 1}]})).is_err());
        assert!(put_many_entries(&json!({"entries": [{"key": "a"}]})).is_err());
        assert!(put_many_entries(&json!(null)).is_err());
    }

    #[test]
    fn echo_and_reserved() {
        let r = on_message_reply("hello", &json!({"a": 1}));
        assert_eq!(
            r,
            json!({"topic":"echo","data":{"topic":"hello","data":{"a":1}}})
        );
        let r = on_message_reply("_nope", &Value::Null);
        assert_eq!(r["topic"], "error");
        assert_eq!(r["data"]["code"], "unknown_command");
    }
}
