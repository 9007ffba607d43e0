//! The transport-neutral request handler shared by every adapter: parse
//! HTTP or WebSocket input into a [`SyncRequest`] (with limits and JSON
//! errors), let [`crate::Engine::handle_request`] answer it, and encode the
//! [`Response`].
//!
//! Flow in an adapter:
//! 1. `parse_http(method, path, query, body, &limits)` (or
//!    [`parse_ws_request`]); on `Err(response)` send it;
//! 2. `request.authorize_scopes(|claimed| ...)` with the user's rights;
//! 3. `engine.handle_request(wall, request_id, request)`: `Some(response)` is
//!    the answer now (pull, snapshot); `None` means a push whose answer comes
//!    later as [`crate::Output::Response`] with the same `request_id`, after
//!    the batch holding it was persisted and `advance`d.

mod limits;
mod parse;
mod request;
mod ws;

pub use limits::Limits;
pub use parse::{check_body_size, parse_http, parse_operation};
pub use request::{Operation, Response, SyncRequest};
pub use ws::{
    WS_TOPIC, WsRequest, encode_ws_request, encode_ws_response, parse_ws_request, parse_ws_response,
};
