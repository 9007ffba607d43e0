//! Sync over the live WebSocket: the same operations and bodies as HTTP,
//! wrapped in the live envelope on topic `_sync`.
//!
//! Request:  `{"topic":"_sync","data":{"rid":<any JSON>,"op":"push"|"pull"|"snapshot","body":<HTTP body JSON>}}`
//! Response: `{"topic":"_sync","data":{"rid":<same>,"status":<HTTP status>,"body":<HTTP response JSON>}}`
//!
//! The live hub hands the adapter the envelope's `data`; the adapter calls
//! [`parse_ws_request`], then the engine, then [`encode_ws_response`].

use serde_json::Value;

use super::{Limits, Operation, Response, SyncRequest, parse_operation};
use crate::protocol::ErrorCode;

/// The live topic sync messages travel on.
pub const WS_TOPIC: &str = "_sync";

/// A parsed WebSocket sync request.
#[derive(Debug, Clone, PartialEq)]
pub struct WsRequest {
    /// The caller's request id, echoed verbatim in the response.
    pub rid: Value,
    /// The validated request.
    pub request: SyncRequest,
}

/// Parses the `data` of a `_sync` message. On failure returns the rid (null
/// if none could be read) and the error response to send back with
/// [`encode_ws_response`]. `encoded_len` is the size of the whole frame, for
/// the body-size limit.
pub fn parse_ws_request(
    data: &Value,
    encoded_len: usize,
    limits: &Limits,
) -> Result<WsRequest, (Value, Response)> {
    let rid = data.get("rid").cloned().unwrap_or(Value::Null);
    let fail = |code, msg: String| (rid.clone(), Response::error(code, msg));
    super::check_body_size(encoded_len, limits).map_err(|r| (rid.clone(), r))?;
    let op_name = data.get("op").and_then(Value::as_str).ok_or_else(|| {
        fail(
            ErrorCode::Invalid,
            "sync message needs a string \"op\"".into(),
        )
    })?;
    let op = Operation::from_name(op_name)
        .ok_or_else(|| fail(ErrorCode::NotFound, format!("unknown sync op {op_name:?}")))?;
    let body = match data.get("body") {
        Some(b) => b.clone(),
        None if op != Operation::Push => Value::Object(Default::default()),
        None => return Err(fail(ErrorCode::Invalid, "push needs a \"body\"".into())),
    };
    let request = parse_operation(op, body, limits).map_err(|r| (rid.clone(), r))?;
    Ok(WsRequest { rid, request })
}

/// Encodes the reply to a WebSocket sync request as a complete live envelope.
pub fn encode_ws_response(rid: &Value, response: &Response) -> String {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    serde_json::json!({
        "topic": WS_TOPIC,
        "data": {"rid": rid, "status": response.status, "body": body},
    })
    .to_string()
}

/// Encodes a WebSocket sync request (used by Rust clients and tests).
pub fn encode_ws_request(rid: &Value, op: Operation, body: &Value) -> String {
    serde_json::json!({
        "topic": WS_TOPIC,
        "data": {"rid": rid, "op": op.name(), "body": body},
    })
    .to_string()
}

/// Parses the `data` of a `_sync` reply (client side): the rid and the
/// response, with the body re-encoded as JSON bytes. `None` if malformed.
pub fn parse_ws_response(data: &Value) -> Option<(Value, Response)> {
    let rid = data.get("rid")?.clone();
    let status = u16::try_from(data.get("status")?.as_u64()?).ok()?;
    let body = serde_json::to_vec(data.get("body")?).ok()?;
    Some((
        rid,
        Response {
            status,
            body: body.into(),
        },
    ))
}
