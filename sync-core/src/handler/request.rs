//! The typed sync request every transport parses into, and the response it
//! gets: one shape for HTTP and WebSocket.

use bytes::Bytes;
use serde::Serialize;

use crate::protocol::{ErrorBody, ErrorCode, PullRequest, PushRequest, SnapshotRequest};

/// The three sync operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Apply mutations.
    Push,
    /// Read changes after a cursor.
    Pull,
    /// Read a scope's whole state.
    Snapshot,
}

impl Operation {
    /// Parses `"push"`, `"pull"` or `"snapshot"`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "push" => Some(Operation::Push),
            "pull" => Some(Operation::Pull),
            "snapshot" => Some(Operation::Snapshot),
            _ => None,
        }
    }

    /// The operation's name, also its path segment (`/push`).
    pub const fn name(self) -> &'static str {
        match self {
            Operation::Push => "push",
            Operation::Pull => "pull",
            Operation::Snapshot => "snapshot",
        }
    }
}

/// A validated request, ready for [`crate::Engine::handle_request`].
#[derive(Debug, Clone, PartialEq)]
pub enum SyncRequest {
    /// Push (1..=max_push_batch mutations).
    Push(PushRequest),
    /// Pull (limit already defaulted and capped).
    Pull(PullRequest),
    /// Snapshot.
    Snapshot(SnapshotRequest),
}

impl SyncRequest {
    /// Which operation this is.
    pub fn operation(&self) -> Operation {
        match self {
            SyncRequest::Push(_) => Operation::Push,
            SyncRequest::Pull(_) => Operation::Pull,
            SyncRequest::Snapshot(_) => Operation::Snapshot,
        }
    }

    /// Every scope the request names, an empty one as `_default` (a push
    /// may name one scope more than once).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        // No allocation: the server core asks this of every request.
        let (mutations, single) = match self {
            SyncRequest::Push(p) => (p.mutations.as_slice(), None),
            SyncRequest::Pull(p) => (&[][..], Some(p.scope.as_str())),
            SyncRequest::Snapshot(s) => (&[][..], Some(s.scope.as_str())),
        };
        let named = mutations.iter().map(|m| m.scope.as_str()).chain(single);
        named.map(|s| {
            if s.is_empty() {
                crate::DEFAULT_SCOPE
            } else {
                s
            }
        })
    }

    /// The scope authorization hook. Calls `authorize(claimed)` for every scope
    /// the request names (empty claims become `_default` first) and replaces
    /// it with the returned authoritative scope, e.g. one derived from the
    /// authenticated user. Any `Err(reason)` refuses the whole request with a
    /// 403 `forbidden` error. Call it before handing the request to the engine;
    /// the engine trusts the scopes it is given.
    pub fn authorize_scopes<F>(&mut self, mut authorize: F) -> Result<(), Response>
    where
        F: FnMut(&str) -> Result<String, String>,
    {
        let mut fix = |scope: &mut String| -> Result<(), Response> {
            let claimed = if scope.is_empty() {
                crate::DEFAULT_SCOPE
            } else {
                scope.as_str()
            };
            match authorize(claimed) {
                Ok(s) => {
                    *scope = s;
                    Ok(())
                }
                Err(reason) => Err(Response::error(ErrorCode::Forbidden, reason)),
            }
        };
        match self {
            SyncRequest::Push(p) => p.mutations.iter_mut().try_for_each(|m| fix(&mut m.scope)),
            SyncRequest::Pull(p) => fix(&mut p.scope),
            SyncRequest::Snapshot(s) => fix(&mut s.scope),
        }
    }
}

/// A response: HTTP status and JSON body bytes. The same pair is carried in a
/// WebSocket reply (see [`crate::handler::encode_ws_response`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status (200, 400, 403, 404, 405, 410, 413, 500).
    pub status: u16,
    /// The JSON body.
    pub body: Bytes,
}

impl Response {
    /// A 200 response with `value` serialized as JSON.
    pub fn ok<T: Serialize>(value: &T) -> Self {
        Self::json(200, value)
    }

    /// A response with `status` and `value` serialized as JSON.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(v) => Response {
                status,
                body: Bytes::from(v),
            },
            Err(e) => Self::error(ErrorCode::Internal, format!("encoding response: {e}")),
        }
    }

    /// An error response `{"code","error"}` with the code's status.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        let body = ErrorBody::new(code, message);
        Response {
            status: code.status(),
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        }
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}
