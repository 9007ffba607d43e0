//! The sans-IO client replica: a pending-mutation queue with optimistic local
//! apply, and the push / pull / snapshot loop that converges it on the server.

mod backoff;
mod responses;
mod types;

pub use types::{ClientRequest, ReplicaEvent, TimerReason};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app::{App, AppError};
use crate::engine::RequestId;
use crate::handler::SyncRequest;
use crate::protocol::{
    Mutation, PullRequest, PullResponse, PushRequest, PushResponse, SnapshotRequest,
    SnapshotResponse,
};
use backoff::Backoff;

/// Replica settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// The scope this replica mirrors.
    pub scope: String,
    /// This client's id; its sequences start at 1 (or after `last_seq`).
    pub client_id: String,
    /// The last sequence this client id already used (0 for a new client).
    pub last_seq: u64,
    /// Seed of the backoff jitter.
    pub seed: u64,
    /// Most mutations per push; keep it within the server's
    /// `Limits::max_push_batch` (a larger push is refused with 400). Default 100.
    pub push_batch: usize,
    /// Pull page size. Default 100.
    pub pull_limit: u64,
    /// Interval of the fallback pull. Default 30 s.
    pub poll_interval: Duration,
    /// A request unanswered this long is abandoned and retried. Default 10 s.
    pub request_timeout: Duration,
    /// First retry delay. Default 250 ms.
    pub backoff_base: Duration,
    /// Longest retry delay. Default 30 s.
    pub backoff_max: Duration,
}

impl ReplicaConfig {
    /// Defaults for `client_id` in `scope`.
    pub fn new(scope: impl Into<String>, client_id: impl Into<String>) -> Self {
        ReplicaConfig {
            scope: scope.into(),
            client_id: client_id.into(),
            last_seq: 0,
            seed: 0,
            push_batch: 100,
            pull_limit: 100,
            poll_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Mistakes of the code using the replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The local mutator refused the mutation; nothing was queued.
    #[error("mutation refused locally: {0}")]
    Refused(AppError),
}

#[derive(Debug, Clone)]
struct PendingMutation {
    mutation: Mutation,
    /// Set when the server acknowledged it: the cursor at which its effect is
    /// in the log. It leaves the queue once the confirmed cursor reaches it.
    acked_at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flight {
    Push { count: usize },
    Pull { cursor: u64 },
    Snapshot,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: RequestId,
    what: Flight,
    deadline: Instant,
}

/// A client's replica of one scope.
///
/// Call order: create with [`Replica::new`]; report the transport with
/// [`Replica::handle_connected`] / [`Replica::handle_disconnected`]; make
/// changes with [`Replica::mutate`]; after every input drain
/// [`Replica::poll_request`] (send each, then answer it with
/// [`Replica::handle_response`] or [`Replica::handle_request_failed`]) and
/// [`Replica::poll_event`]; sleep until [`Replica::poll_timeout`] and call
/// [`Replica::handle_timeout`]; forward `sync:<scope>` pokes to
/// [`Replica::handle_poke`].
///
/// One request is in flight at a time, so pushes arrive in sequence order.
/// The visible [`Replica::state`] is the confirmed server state at
/// [`Replica::cursor`] with the pending mutations re-applied on top (rebased
/// whenever server changes arrive).
#[derive(Debug)]
pub struct Replica<A: App> {
    app: A,
    config: ReplicaConfig,
    confirmed: A::State,
    cursor: u64,
    optimistic: A::State,
    pending: VecDeque<PendingMutation>,
    next_seq: u64,
    next_request: u64,
    connected: bool,
    in_flight: Option<InFlight>,
    need_pull: bool,
    /// The highest cursor a poke announced while a pull was in flight: that
    /// pull may have been answered from before the poke's commit, so its
    /// answer must not end the pulling short of it.
    poked_during_pull: u64,
    need_snapshot: bool,
    retry_at: Option<Instant>,
    poll_at: Instant,
    backoff: Backoff,
    events: VecDeque<ReplicaEvent>,
}

impl<A: App> Replica<A> {
    /// A replica with empty state at cursor 0, disconnected.
    pub fn new(app: A, config: ReplicaConfig, now: Instant) -> Self {
        let backoff = Backoff::new(config.backoff_base, config.backoff_max, config.seed);
        Replica {
            app,
            next_seq: config.last_seq.saturating_add(1),
            poll_at: now + config.poll_interval,
            config,
            confirmed: A::State::default(),
            cursor: 0,
            optimistic: A::State::default(),
            pending: VecDeque::new(),
            next_request: 1,
            connected: false,
            in_flight: None,
            need_pull: true,
            poked_during_pull: 0,
            need_snapshot: false,
            retry_at: None,
            backoff,
            events: VecDeque::new(),
        }
    }

    /// A replica resumed from what the application saved before it stopped:
    /// the confirmed state at `cursor` and the mutations still pending (in
    /// sequence order). Sequences continue after the highest one given. The
    /// pending mutations are re-applied on top and pushed again; the server
    /// answers those it already applied with their original results.
    pub fn resume(
        app: A,
        config: ReplicaConfig,
        now: Instant,
        confirmed: A::State,
        cursor: u64,
        pending: Vec<Mutation>,
    ) -> Self {
        let last = pending
            .iter()
            .filter_map(|m| m.seq)
            .max()
            .unwrap_or(0)
            .max(config.last_seq);
        let mut r = Self::new(app, config, now);
        r.next_seq = last.saturating_add(1);
        r.confirmed = confirmed;
        r.cursor = cursor;
        r.pending = pending
            .into_iter()
            .map(|mutation| PendingMutation {
                mutation,
                acked_at: None,
            })
            .collect();
        r.rebase();
        r
    }

    // ---- getters ----

    /// The state the application shows: confirmed + pending mutations.
    pub fn state(&self) -> &A::State {
        &self.optimistic
    }

    /// The server's state at [`Replica::cursor`].
    pub fn confirmed_state(&self) -> &A::State {
        &self.confirmed
    }

    /// The last server cursor applied.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Mutations not yet reflected in the confirmed state, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Mutation> {
        self.pending.iter().map(|p| &p.mutation)
    }

    /// The last sequence number used.
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// The configuration.
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// True when nothing is pending, in flight or wanted from the server.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty()
            && self.in_flight.is_none()
            && !self.need_pull
            && !self.need_snapshot
    }

    // ---- inputs ----

    /// The transport is up: pull (changes may have been missed) and push.
    pub fn handle_connected(&mut self, _now: Instant) {
        self.connected = true;
        self.need_pull = true;
        self.retry_at = None;
    }

    /// The transport is down: the in-flight request is lost.
    pub fn handle_disconnected(&mut self, _now: Instant) {
        self.connected = false;
        self.in_flight = None;
    }

    /// A poke from `sync:<scope>`: pull if the server is ahead.
    pub fn handle_poke(&mut self, _now: Instant, cursor: u64) {
        if cursor > self.cursor {
            self.need_pull = true;
            if matches!(
                self.in_flight,
                Some(InFlight {
                    what: Flight::Pull { .. },
                    ..
                })
            ) {
                self.poked_during_pull = self.poked_during_pull.max(cursor);
            }
        }
    }

    /// The answer to request `id`. Answers to requests no longer in flight
    /// (timed out, duplicated) are ignored.
    pub fn handle_response(&mut self, now: Instant, id: RequestId, status: u16, body: &[u8]) {
        let Some(flight) = self.in_flight.filter(|f| f.id == id) else {
            return;
        };
        self.in_flight = None;
        let operation = match flight.what {
            Flight::Push { .. } => crate::Operation::Push,
            Flight::Pull { .. } => crate::Operation::Pull,
            Flight::Snapshot => crate::Operation::Snapshot,
        };
        let ok = match (flight.what, status) {
            (Flight::Push { count }, 200) => serde_json::from_slice::<PushResponse>(body)
                .ok()
                .map(|r| self.on_push(now, count, r)),
            (Flight::Pull { cursor }, 200) => serde_json::from_slice::<PullResponse>(body)
                .ok()
                .and_then(|r| self.on_pull(cursor, r)),
            (Flight::Pull { .. }, 410) => {
                self.need_snapshot = true;
                Some(())
            }
            (Flight::Snapshot, 200) => serde_json::from_slice::<SnapshotResponse>(body)
                .ok()
                .and_then(|r| self.on_snapshot(r)),
            _ => None,
        };
        match ok {
            Some(()) => self.backoff.reset(),
            None => self.fail(now, operation, Some(status)),
        }
    }

    /// Request `id` got no answer (connection error, dropped response).
    pub fn handle_request_failed(&mut self, now: Instant, id: RequestId) {
        if let Some(f) = self.in_flight.filter(|f| f.id == id) {
            self.in_flight = None;
            let op = match f.what {
                Flight::Push { .. } => crate::Operation::Push,
                Flight::Pull { .. } => crate::Operation::Pull,
                Flight::Snapshot => crate::Operation::Snapshot,
            };
            self.fail(now, op, None);
        }
    }

    /// Fires due timers: request timeout, end of backoff, periodic pull.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(f) = self.in_flight.filter(|f| f.deadline <= now) {
            self.handle_request_failed(now, f.id);
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
        }
        if self.poll_at <= now {
            self.need_pull = true;
            self.poll_at = now + self.config.poll_interval;
        }
    }

    // ---- commands ----

    /// Applies a mutation optimistically and queues it for the server.
    /// Returns its sequence number.
    pub fn mutate(&mut self, _now: Instant, name: &str, args: Value) -> Result<u64, ReplicaError> {
        let seq = self.next_seq;
        let mutation = Mutation {
            id: format!("{}:{seq}", self.config.client_id),
            scope: self.config.scope.clone(),
            name: name.to_owned(),
            args: Some(args),
            client_id: Some(self.config.client_id.clone()),
            seq: Some(seq),
        };
        let datas = self
            .app
            .apply(&self.optimistic, &mutation)
            .map_err(ReplicaError::Refused)?;
        for d in &datas {
            self.app.absorb(&mut self.optimistic, d);
        }
        self.next_seq = self.next_seq.saturating_add(1);
        self.pending.push_back(PendingMutation {
            mutation,
            acked_at: None,
        });
        self.events.push_back(ReplicaEvent::Changed);
        Ok(seq)
    }

    // ---- outputs ----

    /// The next request to send, if the replica may send one now.
    pub fn poll_request(&mut self, now: Instant) -> Option<ClientRequest> {
        if !self.connected || self.in_flight.is_some() || self.retry_at.is_some_and(|t| t > now) {
            return None;
        }
        let (what, request) = if self.need_snapshot {
            (
                Flight::Snapshot,
                SyncRequest::Snapshot(SnapshotRequest {
                    scope: self.config.scope.clone(),
                    client_id: Some(self.config.client_id.clone()),
                }),
            )
        } else if let Some(first) = self.pending.iter().position(|p| p.acked_at.is_none()) {
            let mutations: Vec<Mutation> = self
                .pending
                .iter()
                .skip(first)
                .take(self.config.push_batch.max(1))
                .map(|p| p.mutation.clone())
                .collect();
            (
                Flight::Push {
                    count: mutations.len(),
                },
                SyncRequest::Push(PushRequest { mutations }),
            )
        } else if self.need_pull {
            (
                Flight::Pull {
                    cursor: self.cursor,
                },
                SyncRequest::Pull(PullRequest {
                    scope: self.config.scope.clone(),
                    cursor: self.cursor,
                    limit: self.config.pull_limit,
                    client_id: Some(self.config.client_id.clone()),
                }),
            )
        } else {
            return None;
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.in_flight = Some(InFlight {
            id,
            what,
            deadline: now + self.config.request_timeout,
        });
        Some(ClientRequest { id, request })
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ReplicaEvent> {
        self.events.pop_front()
    }

    /// When to call [`Replica::handle_timeout`] next, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, TimerReason)> {
        let mut best = (self.poll_at, TimerReason::Poll);
        if let Some(t) = self.retry_at
            && t < best.0
        {
            best = (t, TimerReason::Retry);
        }
        if let Some(f) = self.in_flight
            && f.deadline < best.0
        {
            best = (f.deadline, TimerReason::RequestTimeout);
        }
        Some(best)
    }
}
