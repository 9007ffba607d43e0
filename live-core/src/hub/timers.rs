//! Deadlines: authentication, authorization answers, idle timeout and heartbeat
//! pings.
//!
//! Each session has at most one entry in the hub's timer set, at its earliest
//! deadline. An entry is moved earlier at once but never later: when activity
//! pushes the idle deadline back, the old entry fires early, finds nothing due and
//! re-arms. That keeps a frame's cost free of timer-set updates.

use std::time::Instant;

use super::Hub;
use crate::session::Phase;
use crate::{CloseReason, ErrorCode, OutFrame, TimerReason};

impl<A> Hub<A> {
    /// Handles every deadline at or before `now`: closes sessions whose
    /// authentication or idle deadline passed, answers unanswered authorization
    /// questions with `authorize_timeout`, and sends due pings.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = Some(now);
        self.expire_history(now);
        let mut due = Vec::new();
        while let Some(&(at, key, _)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(s) = self.sessions.get_mut(key) {
                s.timer = None;
            }
            due.push(key);
        }
        // Everything due is due at `now`: sessions are served in key order
        // (the order of fan-out and presence lists), whatever their entries'
        // instants, so the outcome does not hang on when activity last
        // moved a deadline.
        due.sort_unstable();
        for key in due {
            if self.sessions.contains(key) {
                self.fire(now, key);
            }
        }
    }

    fn fire(&mut self, now: Instant, key: usize) {
        let timers = self.config.timers;
        let s = &self.sessions[key];
        if let Phase::Authenticating { deadline: Some(d) } = s.phase {
            if d <= now {
                self.close_key(key, CloseReason::AuthTimeout);
                return;
            }
        }
        if let Some(idle) = timers.idle_timeout {
            if after(s.last_received, idle).is_some_and(|d| d <= now) {
                self.close_key(key, CloseReason::IdleTimeout);
                return;
            }
        }
        if s.pending
            .as_ref()
            .and_then(|p| p.deadline)
            .is_some_and(|d| d <= now)
        {
            if let Some(p) = self.sessions[key].pending.take() {
                self.tickets.remove(&p.ticket.0);
                let message = format!(
                    "authorization to {} {} was not answered in time",
                    p.command.as_str(),
                    p.topic
                );
                self.send_error(key, ErrorCode::AuthorizeTimeout, &message);
            }
            self.process_held(now, key);
            if !self.sessions.contains(key) {
                return;
            }
        }
        if self.sessions[key].next_ping.is_some_and(|p| p <= now) {
            self.sessions[key].next_ping = timers.ping_interval.and_then(|d| after(now, d));
            if !self.enqueue(key, OutFrame::Ping(bytes::Bytes::new())) {
                return;
            }
        }
        self.reschedule(key);
    }

    /// The session's earliest deadline.
    fn next_deadline(&self, key: usize) -> Option<(Instant, TimerReason)> {
        let s = &self.sessions[key];
        let auth = match s.phase {
            Phase::Authenticating { deadline } => deadline.map(|d| (d, TimerReason::AuthDeadline)),
            Phase::Active { .. } => None,
        };
        let authorize = s
            .pending
            .as_ref()
            .and_then(|p| p.deadline)
            .map(|d| (d, TimerReason::AuthorizeDeadline));
        let idle = self
            .config
            .timers
            .idle_timeout
            .and_then(|d| after(s.last_received, d))
            .map(|d| (d, TimerReason::Idle));
        let ping = s.next_ping.map(|d| (d, TimerReason::Ping));
        [auth, authorize, idle, ping].into_iter().flatten().min()
    }

    /// Brings the session's timer entry up to date (moving it earlier only).
    pub(super) fn reschedule(&mut self, key: usize) {
        let desired = self.next_deadline(key);
        let current = self.sessions[key].timer;
        if let (Some(cur), Some(want)) = (current, desired) {
            if cur == want || cur.0 < want.0 {
                return;
            }
        }
        if let Some((at, why)) = current {
            self.timers.remove(&(at, key, why));
        }
        if let Some((at, why)) = desired {
            self.timers.insert((at, key, why));
        }
        self.sessions[key].timer = desired;
    }
}

/// The deadline `d` after `from`. A zero duration counts as one nanosecond, so
/// every deadline is strictly after the instant it is computed from; a duration
/// too large to represent means "never".
pub(super) fn after(from: Instant, d: std::time::Duration) -> Option<Instant> {
    from.checked_add(d.max(std::time::Duration::from_nanos(1)))
}
