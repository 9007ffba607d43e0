//! What the replica emits: requests to send, events for the application,
//! and the reasons of its timers.

use bytes::Bytes;
use serde_json::Value;

use crate::engine::RequestId;
use crate::handler::{Operation, SyncRequest, encode_ws_request};
use crate::protocol::{Mutation, MutationResult};

/// A request the driver must send and answer with
/// [`crate::Replica::handle_response`] or
/// [`crate::Replica::handle_request_failed`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    /// Echo this id in the answer.
    pub id: RequestId,
    /// The request.
    pub request: SyncRequest,
}

impl ClientRequest {
    /// The operation.
    pub fn operation(&self) -> Operation {
        self.request.operation()
    }

    /// The path below the sync prefix (`/push`, `/pull`, `/snapshot`); the
    /// method is always `POST`.
    pub fn http_path(&self) -> &'static str {
        match self.operation() {
            Operation::Push => "/push",
            Operation::Pull => "/pull",
            Operation::Snapshot => "/snapshot",
        }
    }

    /// The JSON body, as HTTP carries it.
    pub fn body_json(&self) -> Value {
        let v = match &self.request {
            SyncRequest::Push(p) => serde_json::to_value(p),
            SyncRequest::Pull(p) => serde_json::to_value(p),
            SyncRequest::Snapshot(s) => serde_json::to_value(s),
        };
        v.unwrap_or(Value::Null)
    }

    /// The JSON body bytes.
    pub fn body_bytes(&self) -> Bytes {
        Bytes::from(self.body_json().to_string())
    }

    /// The complete WebSocket text frame (`{"topic":"_sync","data":{"rid":id,..}}`).
    pub fn ws_text(&self) -> String {
        encode_ws_request(&Value::from(self.id.0), self.operation(), &self.body_json())
    }
}

/// Something the application may want to react to.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaEvent {
    /// The optimistic state changed (local mutation, server changes, rebase).
    Changed,
    /// The server permanently refused a mutation; it was dropped from the queue
    /// and its optimistic effect removed.
    Rejected {
        /// The mutation.
        mutation: Box<Mutation>,
        /// The server's recorded result.
        result: Box<MutationResult>,
    },
    /// The replica was reset from a snapshot (cursor too old).
    Reset {
        /// The snapshot's cursor.
        cursor: u64,
    },
    /// A request failed (network, timeout or non-success status); the
    /// replica will retry after a backoff.
    RequestFailed {
        /// Which operation.
        operation: Operation,
        /// The HTTP status, or `None` for a transport failure or timeout.
        status: Option<u16>,
    },
}

/// Why the replica wants to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerReason {
    /// The in-flight request has taken too long; it is abandoned.
    RequestTimeout,
    /// The backoff after a failure has passed; requests resume.
    Retry,
    /// Time for the slow periodic pull (pokes may have been lost).
    Poll,
}
