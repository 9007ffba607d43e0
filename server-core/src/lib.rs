//! The whole live + sync server as one sans-IO state machine.
//!
//! # What this crate owns
//!
//! [`ServerCore`] joins `live_core::Hub` and `sync_core::Engine` and holds
//! every server policy between and around them: how a sync request (HTTP or
//! `_sync` over the WebSocket) is parsed, authorized and handed to the
//! engine; how pushes wait for a durable commit (group commit, one batch out
//! at a time); pokes after commit; what a failed batch means (stale refusal:
//! reload and push again, a bounded number of times, then 503
//! `unavailable`; outage: 503, on a shared store once tries for up to
//! `CoreConfig::outage_wait` failed;
//! anything else: the engine's errors); reloads
//! of scopes other nodes wrote, before their pokes; trims; authorization
//! decisions from the application's [`Policy`]; what a signed token's
//! claims allow ([`claims`]); credentials that expire (a deadline of the
//! core, closing with 4001) and their in-band refresh; each session's
//! message rate; the abuse limits the loops ask before the core sees a
//! client ([`limits`]); the broker's interest; shutdown drain; the operator
//! counters ([`metrics`]).
//!
//! # What it must never do
//!
//! IO of any kind: no sockets, files, threads, channels, runtime types, no
//! clock or random number reads. Time is an argument (`now: Instant`, first
//! after `&mut self`, on every input; wall time is reported with
//! [`ServerCore::handle_wall_clock`]); the session-id seed is configuration.
//! The same inputs give the same outputs, byte for byte. The store
//! procedures in [`jobs`] do IO through the `sync_core::Store` trait; they are
//! what a loop runs for [`Output::Persist`] and [`Output::Reload`], never
//! called by the machine itself.
//!
//! # Call order
//!
//! A loop owns the core, the sockets, the store handle, the broker link and
//! the clock, and repeats:
//!
//! 1. report the wall time ([`ServerCore::handle_wall_clock`]) and what the
//!    writers flushed ([`ServerCore::handle_flushed`]);
//! 2. feed what arrived, each with the current `now`: a connection opened /
//!    frame / closed / peer fault (`handle_open`, `handle_frame`,
//!    `handle_transport_closed`, `handle_peer_fault`); a sync request over
//!    HTTP (`handle_http_sync`); a job's result (`handle_persisted`,
//!    `handle_reloaded`); another node's commit (`handle_store_notice`); a
//!    broker message (`handle_broker_message`, `handle_broker_restored`); a
//!    refresh token's verification (`handle_refresh`); a deadline
//!    (`handle_timeout`, credential expiries included); server-side commands (`publish`, `send`,
//!    `close`, `subscribe`, `trim`, `handle_shutdown`);
//! 3. drain [`ServerCore::poll_output`] and carry out each [`Output`] in
//!    order: frames and closes to connections, answers to HTTP requests,
//!    [`Output::Persist`] / [`Output::Reload`] to the store (at most one out;
//!    report it with the matching `handle_*`), commands to the broker,
//!    [`Output::Message`] and [`Output::Closed`] to the application's hooks
//!    (which may call commands; drain again after them), [`Output::Refresh`]
//!    to the token verifier (answer with `handle_refresh`; the session's
//!    later messages wait for it);
//! 4. sleep until [`ServerCore::poll_timeout`] or the next input.
//!
//! Nothing is answered, published or poked before the batch holding it is
//! reported persisted. A panic on any input is a bug.
//!
//! The example below (`doc/example.md`, run as a doctest) is a loop's
//! side: it reads its clock and hands the instant to every input.
//!
#![doc = include_str!("../doc/example.md")]

pub mod broker;
pub mod claims;
mod config;
mod core;
mod error;
pub mod jobs;
pub mod limits;
pub mod metrics;
mod output;
mod policy;
mod request;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::core::ServerCore;
pub use crate::core::guard::{REFRESH_TOPIC, RefreshRefused};
pub use broker::BackplaneCommand;
pub use config::{CoreConfig, OUTAGE_WAIT, RateLimit};
pub use error::ServerError;
pub use metrics::{BrokerMetrics, GuardMetrics, MetricsSnapshot, SyncMetrics};
pub use output::{
    Deadline, Notice, Output, PersistFailure, PersistJob, ReloadJob, Reloaded, Ticket, TimerReason,
};
pub use policy::{AllowAll, Policy};
pub use request::{Body, HttpSync};

pub use live_core::{
    CloseReason, Command, Frame, HistoryLimits, HistoryRead, OutFrame, PeerFault, PresenceMember,
    SessionId,
};
