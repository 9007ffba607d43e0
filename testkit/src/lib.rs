//! Black-box test kit for live + sync servers: the conformance suite, the crash-test
//! driver and the load generator.
//!
//! Owns: clients that speak the wire protocols over real sockets and the
//! expectations a server must meet. It holds no server of its own and must
//! never link the project's cores or adapters: every check goes through a
//! socket, so one suite judges any adapter (tokio, smol, ...) the same way.
//! The tests that run it against a real server live in the adapter crates
//! (`tests/conformance.rs`, `tests/crash.rs`, `tests/binary.rs`, and
//! adapter-tokio's `tests/loadgen_smoke.rs`).
//!
//! # Wiring an adapter
//!
//! An adapter crate adds `testkit` as a dev-dependency and a test file, e.g.
//! `adapter-tokio/tests/conformance.rs` (which compiles it for real; this
//! is its outline):
//!
//! ```text
//! use testkit::conformance::{BoxFuture, ServerUnderTest};
//! use testkit::profile::Profile;
//!
//! struct Running { /* the server handle, its address, its trim handle */ }
//!
//! impl ServerUnderTest for Running {
//!     fn ws_url(&self) -> String { format!("ws://{}/ws", self.addr) }
//!     fn http_base(&self) -> String { format!("http://{}", self.addr) }
//!     fn trim<'a>(&'a self, scope: &'a str, before: u64) -> BoxFuture<'a, Result<(), String>> {
//!         Box::pin(async move { self.handle.trim(scope, before).await.map_err(|e| e.to_string()) })
//!     }
//! }
//! // Dropping `Running` must stop the server.
//!
//! async fn start(profile: Profile) -> Box<dyn ServerUnderTest> {
//!     // Bind 127.0.0.1:0, configure every hook from `testkit::profile` (see below).
//!     Box::new(Running { /* ... */ })
//! }
//!
//! testkit::conformance_suite!(start);
//! ```
//!
//! `cargo test -p adapter-tokio --test conformance` then runs one named test per
//! case (see [`conformance::CASES`]). The crash test is one more test calling
//! [`crash::assert_binary_loses_nothing`] (or [`crash::run`]); the stock
//! binary's end-to-end scenarios are
//! [`server_binary_suite!`]. Nothing in this crate's own `cargo test` needs a server.
//!
//! # The conformance profile
//!
//! The configuration a server runs with under the suite. Limits are the fields of
//! [`profile::Profile::conformance`]; the hooks are pure functions in [`profile`],
//! which a harness should call rather than re-implement.
//!
//! - **Paths**: WebSocket `/ws`; sync endpoints `/_sync/push`, `/_sync/pull`,
//!   `/_sync/snapshot` (POST, and GET with query parameters for pull and
//!   snapshot).
//! - **Authentication** ([`profile::authenticate`]), on the upgrade and on every
//!   sync HTTP request: the token is taken from `Authorization: Bearer T`, else the
//!   query parameter `token=T`, else the cookie `token=T`. No token, or `T ==
//!   "deny"`, is 401. The authenticated value is the user name `T`.
//! - **Origin** ([`profile::origin_allowed`]), on the upgrade: no `Origin` header is
//!   allowed (non-browser clients); otherwise it must equal `http://allowed.test`
//!   exactly; anything else is 403. The origin check comes before authentication
//!   (as in go-mizu), but the suite never sends a request failing both.
//! - **Handshake**: `Sec-WebSocket-Version` other than `13` is 426 with the header
//!   `Sec-WebSocket-Version: 13`.
//! - **Built-in commands** `subscribe {topic}`, `unsubscribe {topic}`, `publish
//!   {topic, data}` are on. A successful subscribe or unsubscribe sends nothing
//!   back (go-mizu sends nothing either). A publish reaches every subscriber of
//!   the topic as `{"topic": topic, "data": data}`, including the publisher when it
//!   is subscribed; publishing needs no subscription. A command with unusable data
//!   (missing or non-string topic) gets an error frame.
//! - **Error frames**: `{"topic":"error","data":{"code":string,"message":string}}`,
//!   connection kept. The suite checks the code only where the profile fixes it:
//!   `forbidden` (topic rules) and `unknown_command` (reserved topics). Malformed
//!   JSON, a non-object envelope, a missing or non-string topic each get an error
//!   frame with any code.
//! - **Topic rules** ([`profile::may_subscribe`], [`profile::may_publish`]):
//!   `private:<U>` only for user `U` (subscribe and publish); `readonly:*` may be
//!   subscribed but never published by a client; `sync:<scope>` may be subscribed
//!   only by a user allowed the scope, and no client may ever publish on `sync:*`.
//!   A refused command gets an error frame with code `forbidden`.
//! - **Scope rule** ([`profile::scope_allowed`]): user `U` may use `user:U` and
//!   `shared`, nothing else. That includes the default scope `_default`, so a
//!   mutation, pull or snapshot without a scope is 403. A refused scope is 403
//!   `{"code":"forbidden","error":..}` for the whole request: a push batch with one
//!   forbidden mutation applies nothing.
//! - **On-message** ([`profile::on_message_reply`]): a message that is not a
//!   built-in command is answered to its sender alone with
//!   `{"topic":"echo","data":<the original envelope>}`; it is not fanned out.
//!   Topics starting with `_` are reserved: `_sync` carries sync operations, any
//!   other reserved topic gets an error frame `unknown_command`.
//! - **Ordering**: frames of one connection are handled in order, and a reply or
//!   effect of frame *n* happens before frame *n + 1* is handled. The suite relies on
//!   this through [`ws_client::WsClient::barrier`] (an echo round trip) instead of
//!   sleeping.
//! - **Limits**: read limit 64 KiB (a bigger message closes the connection with
//!   close code 1009; the server must let the client read that close frame); send
//!   queue 64 messages / 256 KiB per session (overflow closes that session alone, code
//!   4008 or just the end of the connection); HTTP body limit 1 MiB (413
//!   `payload_too_large`); at most 100 mutations per push (more is 400
//!   `invalid_mutation`); pull `limit` defaults to 100 and is capped at 1000.
//! - **Sync app**: the built-in JSON key-value app (`put {"key","value"}`, `delete
//!   {"key"}`), plus the application mutator `put_many {"entries":[{"key","value"},
//!   ..]}` ([`profile::PUT_MANY`], args parsed by [`profile::put_many_entries`])
//!   that puts every entry in one mutation, one change
//!   per entry. Each put or delete produces exactly one change whose `data`
//!   mentions the key (any shape); the snapshot `data` of a scope is a JSON object
//!   from key to value.
//! - **Sync semantics** checked (DESIGN "Where we differ from mizu"): cursors dense
//!   per scope from 1; a result's `cursor` is its (last) change's cursor; a replay
//!   with the same `client_id`/`seq` (even with a changed body) or the same
//!   mutation id returns the original result and applies nothing; a mutation past
//!   a gap in a client's sequence is not applied; a permanent mutation error
//!   (`put_many` with unusable args is one) is a 200 result `{"ok":false,
//!   "error",..}`, recorded, replayed unchanged, and advances the sequence; `next_cursor` is always present
//!   (the request's cursor on an empty page); a page never splits one mutation's
//!   changes (it may exceed `limit` to keep one whole); after `trim(scope, before)`
//!   a pull from `c` works iff `c >= before - 1`, else 410 `cursor_too_old`.
//! - **Pokes**: after a push commits, every subscriber of `sync:<scope>` receives
//!   `{"topic":"sync:<scope>","data":{"cursor":n}}`, `n` the newest cursor.
//! - **Sync over the WebSocket**: `{"topic":"_sync","data":{"rid":any,"op":"push"|
//!   "pull"|"snapshot","body":<HTTP body JSON>}}` is answered to the sender with
//!   `{"topic":"_sync","data":{"rid":<same>,"status":<HTTP status>,"body":<HTTP
//!   response JSON>}}`, with the same authorization as HTTP (the session's user). An
//!   unknown `op` is status 404 `not_found`.
//! - **Bad bodies**: a body that is not JSON, has no mutations (also `[]`),
//!   `mutations` not a list, or a pull with a non-numeric or negative cursor, is
//!   400 `invalid_mutation`; errors are always `{"code","error"}`.
//! - **Trim hook**: [`conformance::ServerUnderTest::trim`] calls the server's trim.

pub mod binary_limits;
mod binary_process;
pub mod binary_tls;
pub mod binary_tokens;
pub mod conformance;
pub mod crash;
pub mod http_client;
pub mod loadgen;
pub mod profile;
pub mod raw_http;
pub mod server_binary;
pub mod sync_client;
pub mod tcp_proxy;
pub mod tls_broker;
pub mod tokens;
pub mod ws_client;
