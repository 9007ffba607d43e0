//! Sans-IO pub/sub hub: sessions, topics, send queues, heartbeats and the
//! WebSocket handshake rules.
//!
//! # What this crate owns
//!
//! Every live protocol decision: the session lifecycle (open -> authenticating,
//! with a deadline -> active -> closed, the close reason reported exactly once),
//! the wire envelope `{"topic": string, "data": any JSON}`, the built-in commands
//! `subscribe`, `unsubscribe` and `publish` and their authorization (including the
//! rule that `sync:<scope>` topics are subscribed only with the scope's
//! authorization and published only by the server), topic membership, fan-out of
//! one shared encoded frame, per-session send-queue bounds (slow consumers are
//! closed with 4008), read limit, heartbeats and idle timeout, RFC 6455 control
//! frames, error frames, operator counters, per-topic history rings with
//! recovery on subscribe, presence, and the pure WebSocket handshake rules
//! ([`handshake`]) both adapters share.
//!
//! # What it must never do
//!
//! IO of any kind (sockets, files), read a clock (no `Instant` or
//! `SystemTime` is taken from the system), spawn threads or tasks, use a global random number
//! generator, iterate a randomly-seeded hash map where order reaches an output, or
//! depend on a runtime (tokio, smol, tungstenite). Time comes in as an argument,
//! randomness from a seed or an injected [`IdGenerator`]; the same inputs give the
//! same outputs, byte for byte. A peer's fault becomes a close or an error frame,
//! never an `Err` and never a panic.
//!
//! # Call order
//!
//! See [`Hub`]: handshake rules, `handle_open`, `handle_*` inputs, then drain
//! [`Hub::poll_action`] and [`Hub::poll_event`], arm [`Hub::poll_timeout`], call
//! [`Hub::handle_timeout`] when it passes.
//!
//! The example below (`doc/example.md`, run as a doctest) is the adapter's
//! side: it reads its clock and hands the instant to every input.
//!
#![doc = include_str!("../doc/example.md")]
//!
//! # Wire
//!
//! Client to server, text (or binary) frames:
//! - `{"topic":"subscribe","data":{"topic":T}}`
//! - `{"topic":"unsubscribe","data":{"topic":T}}`
//! - `{"topic":"publish","data":{"topic":T,"data":any}}`: every subscriber of `T`
//!   (the sender too, if subscribed) receives `{"topic":T,"data":any}`;
//! - any other topic: an application message ([`Event::Message`]).
//!
//! On topics with history ([`HubConfig::history`], [`HistoryPolicy`]) a
//! publication carries its offset, `{"topic":T,"data":any,"offset":N}`, and a
//! subscribe may name a position, `"since":{"epoch":E,"offset":N}`, or ask
//! for it, `"history":true`: it is answered
//! `{"topic":"subscribed","data":{"topic":T,"epoch":E,"offset":N,"recovered":b}}`,
//! then, when recovered, with every publication after the position, before any
//! live one. `"presence":true` in a subscribe makes the session hear
//! `{"topic":"join"|"leave","data":{"topic":T,"session":S,"user":U}}`, and
//! `{"topic":"presence","data":{"topic":T}}` lists `T`'s subscribers; both need
//! the right to subscribe to `T` ([`Authorizer::presence_user`] gives `U`).
//!
//! Errors come back as `{"topic":"error","data":{"code":C,"message":M}}` with the
//! codes of [`ErrorCode`]; the connection stays open.

mod authenticate;
mod authorize;
mod close;
mod config;
mod envelope;
mod error;
mod frame;
pub mod handshake;
mod history;
mod hub;
mod id;
mod metrics;
mod options;
mod output;
mod presence;
mod session;
#[cfg(feature = "testing")]
pub mod testing;

pub use authenticate::Rejection;
pub use authorize::{
    AuthorizeRequest, Authorizer, Decision, DefaultAuthorizer, SYNC_PREFIX, sync_scope,
};
pub use close::{CloseReason, codes};
pub use config::{BuiltinCommands, HubConfig, Limits, Timers};
pub use error::{ErrorCode, HubError};
pub use frame::{Frame, OutFrame, PeerFault};
pub use history::{HistoryLimits, HistoryPolicy, HistoryRead, HistoryRule};
pub use hub::Hub;
pub use id::{IdGenerator, SeededIds, SessionId};
pub use metrics::Metrics;
pub use output::{Action, AuthorizeTicket, Command, Event, TimerReason};
pub use presence::PresenceMember;
