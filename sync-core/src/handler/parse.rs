//! Parsing of transport input (HTTP method + path + query + body, or a
//! WebSocket op + JSON body) into a [`SyncRequest`], with JSON errors for
//! everything malformed. Never panics, whatever the bytes.

use serde_json::Value;

use super::{Limits, Operation, Response, SyncRequest};
use crate::protocol::{ErrorCode, Mutation, PullRequest, PushRequest, SnapshotRequest};

/// Parses an HTTP request. `path` is the part after the mount prefix
/// (`/push`, `/pull`, `/snapshot`; a missing leading slash is tolerated),
/// `query` the raw query string without `?` (empty if none).
///
/// Routes: `POST /push`; `POST` or `GET /pull`; `POST` or `GET /snapshot`.
/// `GET` reads `scope`, `cursor`, `limit`, `client_id` from the query; `POST`
/// reads the JSON body (an empty pull/snapshot body means `{}`).
/// Errors: 404 unknown path, 405 wrong method, 413 body too large, 400 for
/// everything malformed.
pub fn parse_http(
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
    limits: &Limits,
) -> Result<SyncRequest, Response> {
    let name = path.trim_start_matches('/').trim_end_matches('/');
    let op = Operation::from_name(name)
        .ok_or_else(|| Response::error(ErrorCode::NotFound, format!("no sync route {path:?}")))?;
    let get_ok = op != Operation::Push;
    match method {
        "POST" => {}
        "GET" if get_ok => {
            return parse_query(op, query, limits).and_then(|r| check_keys(r, limits));
        }
        _ => {
            let allowed = if get_ok { "GET, POST" } else { "POST" };
            return Err(Response::error(
                ErrorCode::MethodNotAllowed,
                format!("method {method} not allowed on /{name}; use {allowed}"),
            ));
        }
    }
    if body.len() > limits.max_body_bytes {
        return Err(too_large(body.len(), limits));
    }
    let value = if body.iter().all(u8::is_ascii_whitespace) && op != Operation::Push {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| invalid(format!("invalid JSON body: {e}")))?
    };
    parse_operation(op, value, limits)
}

/// Parses an operation's JSON body, as carried by HTTP or by a WebSocket
/// message. Enforces batch size, key lengths and the pull limit; body size
/// is the transport's to check (see [`check_body_size`]).
pub fn parse_operation(
    op: Operation,
    body: Value,
    limits: &Limits,
) -> Result<SyncRequest, Response> {
    let request = match op {
        Operation::Push => parse_push(body, limits).map(SyncRequest::Push),
        Operation::Pull => {
            let mut req: PullRequest = from_value(body, "pull")?;
            req.limit = cap_limit(req.limit, limits);
            Ok(SyncRequest::Pull(req))
        }
        Operation::Snapshot => from_value(body, "snapshot").map(SyncRequest::Snapshot),
    }?;
    check_keys(request, limits)
}

/// 400 when a scope, mutation id or client id is longer than
/// [`Limits::max_key_bytes`] or holds a NUL character. Stores key records
/// by them, and PostgreSQL refuses NUL in text: such a key would fail the
/// whole batch it is in, other clients' pushes with it.
fn check_keys(request: SyncRequest, limits: &Limits) -> Result<SyncRequest, Response> {
    // `what` is formatted only for a refusal: every push checks every
    // mutation's keys, and the check is on its path.
    let check = |what: std::fmt::Arguments<'_>, key: &str| {
        if key.len() > limits.max_key_bytes {
            Err(invalid(format!(
                "{what} is {} bytes long; at most {} allowed",
                key.len(),
                limits.max_key_bytes
            )))
        } else if key.contains('\0') {
            Err(invalid(format!("{what} holds a NUL character (U+0000)")))
        } else {
            Ok(())
        }
    };
    match &request {
        SyncRequest::Push(p) => {
            for (i, m) in p.mutations.iter().enumerate() {
                check(format_args!("mutation {i}: scope"), &m.scope)?;
                check(format_args!("mutation {i}: id"), &m.id)?;
                if let Some(client) = &m.client_id {
                    check(format_args!("mutation {i}: client_id"), client)?;
                }
            }
        }
        SyncRequest::Pull(p) => {
            check(format_args!("scope"), &p.scope)?;
            if let Some(client) = &p.client_id {
                check(format_args!("client_id"), client)?;
            }
        }
        SyncRequest::Snapshot(s) => {
            check(format_args!("scope"), &s.scope)?;
            if let Some(client) = &s.client_id {
                check(format_args!("client_id"), client)?;
            }
        }
    }
    Ok(request)
}

/// 413 when a body of `len` bytes is over the limit.
pub fn check_body_size(len: usize, limits: &Limits) -> Result<(), Response> {
    if len > limits.max_body_bytes {
        Err(too_large(len, limits))
    } else {
        Ok(())
    }
}

fn parse_push(body: Value, limits: &Limits) -> Result<PushRequest, Response> {
    let list = match body {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("mutations") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(invalid("\"mutations\" must be an array")),
            None => return Err(invalid("push body needs \"mutations\"")),
        },
        _ => return Err(invalid("push body must be an object or an array")),
    };
    if list.is_empty() {
        return Err(invalid("no mutations provided"));
    }
    if list.len() > limits.max_push_batch {
        return Err(invalid(format!(
            "too many mutations in batch: {} > {}",
            list.len(),
            limits.max_push_batch
        )));
    }
    let mut mutations = Vec::with_capacity(list.len());
    for (i, item) in list.into_iter().enumerate() {
        let m: Mutation = serde_json::from_value(item)
            .map_err(|e| invalid(format!("mutation {i} is invalid: {e}")))?;
        if m.name.is_empty() {
            return Err(invalid(format!("mutation {i} has no name")));
        }
        if m.id.is_empty() && m.client_id.is_none() {
            return Err(invalid(format!("mutation {i} has no id")));
        }
        if m.seq == Some(0) {
            return Err(invalid(format!("mutation {i}: seq starts at 1")));
        }
        if m.seq.is_some() != m.client_id.is_some() {
            return Err(invalid(format!(
                "mutation {i}: client_id and seq must be given together"
            )));
        }
        mutations.push(m);
    }
    Ok(PushRequest { mutations })
}

fn parse_query(op: Operation, query: &str, limits: &Limits) -> Result<SyncRequest, Response> {
    let mut scope = String::new();
    let mut cursor = 0u64;
    let mut limit = 0u64;
    let mut client_id = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).ok_or_else(|| invalid("bad percent-encoding in query"))?;
        let v = percent_decode(v).ok_or_else(|| invalid("bad percent-encoding in query"))?;
        let number = |what: &str| {
            if v.is_empty() {
                Ok(0)
            } else {
                v.parse::<u64>()
                    .map_err(|_| invalid(format!("{what} must be a non-negative integer")))
            }
        };
        match k.as_str() {
            "scope" => scope = v.clone(),
            "cursor" => cursor = number("cursor")?,
            "limit" if v.starts_with('-') && v[1..].bytes().all(|b| b.is_ascii_digit()) => {
                limit = 0
            }
            "limit" => limit = number("limit")?,
            "client_id" if !v.is_empty() => client_id = Some(v.clone()),
            _ => {}
        }
    }
    Ok(match op {
        Operation::Pull => SyncRequest::Pull(PullRequest {
            scope,
            cursor,
            limit: cap_limit(limit, limits),
            client_id,
        }),
        _ => SyncRequest::Snapshot(SnapshotRequest { scope, client_id }),
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn cap_limit(limit: u64, limits: &Limits) -> u64 {
    if limit == 0 {
        limits.default_pull_limit.min(limits.max_pull_limit)
    } else {
        limit.min(limits.max_pull_limit)
    }
}

fn from_value<T: serde::de::DeserializeOwned>(body: Value, what: &str) -> Result<T, Response> {
    if !body.is_object() {
        return Err(invalid(format!("{what} body must be a JSON object")));
    }
    serde_json::from_value(body).map_err(|e| invalid(format!("invalid {what} body: {e}")))
}

fn invalid(message: impl Into<String>) -> Response {
    Response::error(ErrorCode::Invalid, message)
}

fn too_large(len: usize, limits: &Limits) -> Response {
    Response::error(
        ErrorCode::PayloadTooLarge,
        format!(
            "body of {len} bytes exceeds {} bytes",
            limits.max_body_bytes
        ),
    )
}
