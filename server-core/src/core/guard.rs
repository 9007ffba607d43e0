//! What keeps sessions within their rights over time: credentials that
//! expire (closed with 4001 unless refreshed in-band), refreshes that
//! replace a session's credential (ending the subscriptions the new one no
//! longer allows), and the per-session message rate (a token bucket).
//!
//! Verifying a refresh token may need keys the core does not hold, so the
//! core hands it out ([`Output::Refresh`]) and is answered with
//! [`ServerCore::handle_refresh`]; what the new credential allows is
//! decided here, from the [`Policy`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use live_core::{Command, ErrorCode, Frame, SessionId, codes, sync_scope};
use serde_json::Value;
use sync_core::App;

use super::ServerCore;
use crate::config::RateLimit;
use crate::limits::TokenBucket;
use crate::output::Output;
use crate::policy::{Policy, scope_maps_to_itself};

/// The topic of in-band token refreshes: `{"topic":"refresh","data":{"token":T}}`,
/// answered `{"topic":"refresh","data":{"ok":true}}` or an error frame.
pub const REFRESH_TOPIC: &str = "refresh";

/// Messages a session may send while its refresh is being verified; they
/// wait, so they are served in order after the refresh's answer. Past this
/// the session is closed (1008).
const MAX_HELD_DURING_REFRESH: usize = 256;

/// Why a refresh token was refused, as the loop that verified it says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshRefused {
    /// Not a valid token (bad signature, algorithm, shape, not yet valid):
    /// error code `unauthorized`.
    Unauthorized(String),
    /// The token has expired: error code `token_expired`.
    Expired(String),
}

/// A session's message allowance.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: TokenBucket,
    /// Messages dropped since the last one let through.
    dropped: u32,
}

/// Per-session expiry deadlines and message buckets.
#[derive(Debug, Default)]
pub(super) struct Guard {
    expiry: BTreeMap<SessionId, Instant>,
    deadlines: BTreeSet<(Instant, SessionId)>,
    buckets: BTreeMap<SessionId, Bucket>,
    /// Sessions whose refresh is out, with the messages that arrived since.
    refreshing: BTreeMap<SessionId, VecDeque<Frame>>,
}

impl Guard {
    /// The earliest credential expiry.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    fn set_expiry(&mut self, id: SessionId, at: Option<Instant>) {
        if let Some(old) = self.expiry.remove(&id) {
            self.deadlines.remove(&(old, id));
        }
        if let Some(at) = at {
            self.expiry.insert(id, at);
            self.deadlines.insert((at, id));
        }
    }

    /// Forgets a closed session.
    pub(super) fn forget(&mut self, id: SessionId) {
        self.set_expiry(id, None);
        self.buckets.remove(&id);
        self.refreshing.remove(&id);
    }

    /// Sessions whose credential expired at or before `now`, forgotten.
    fn take_expired(&mut self, now: Instant) -> Vec<SessionId> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.expiry.remove(&id);
            due.push(id);
        }
        due
    }
}

/// What to do with a data frame under the rate limit.
enum Verdict {
    Pass,
    /// Dropped; tell the session (first drop of a run).
    Warn,
    /// Dropped silently (already told).
    Drop,
    /// Kept flooding after being told: close.
    Close,
}

fn admit(bucket: &mut Bucket, limit: RateLimit, now: Instant) -> Verdict {
    if bucket.tokens.take(limit, now) {
        bucket.dropped = 0;
        return Verdict::Pass;
    }
    bucket.dropped = bucket.dropped.saturating_add(1);
    if bucket.dropped == 1 {
        Verdict::Warn
    } else if bucket.dropped > limit.burst.max(1) {
        Verdict::Close
    } else {
        Verdict::Drop
    }
}

impl<U, P, A> ServerCore<U, P, A>
where
    U: Clone + Send + 'static,
    P: Policy<U> + Send + Sync + 'static,
    A: App,
{
    /// The answer to an [`Output::Refresh`]: the verified token's value, or
    /// why it was refused. Accepted, it replaces the session's credential:
    /// subscriptions it no longer allows end (each with a `forbidden` error
    /// frame naming the topic), its expiry moves, and the session gets
    /// `{"topic":"refresh","data":{"ok":true}}`. Refused, the session gets an
    /// error frame (`unauthorized` or `token_expired`) and keeps its current
    /// credential until that expires.
    pub fn handle_refresh(
        &mut self,
        now: Instant,
        id: SessionId,
        result: Result<U, RefreshRefused>,
    ) {
        self.at(now);
        let held = self.guard.refreshing.remove(&id);
        match result {
            Ok(user) => self.refresh_accepted(id, user),
            Err(refused) => {
                self.guard_metrics.refreshes_refused += 1;
                let (code, message) = match &refused {
                    RefreshRefused::Unauthorized(m) => (ErrorCode::Unauthorized, m),
                    RefreshRefused::Expired(m) => (ErrorCode::TokenExpired, m),
                };
                let _ = self.hub.send_error_frame(id, code, message);
            }
        }
        self.pump();
        if let Some(held) = held {
            self.replay_held(id, held);
        }
    }

    /// Hands the hub the messages that waited for a refresh, in order,
    /// until one of them is a refresh again (the rest wait for that one).
    fn replay_held(&mut self, id: SessionId, mut held: VecDeque<Frame>) {
        while let Some(frame) = held.pop_front() {
            self.hub.handle_frame(self.now, id, frame);
            self.pump();
            if let Some(waiting) = self.guard.refreshing.get_mut(&id) {
                waiting.extend(held);
                return;
            }
        }
    }

    /// Holds a data frame of a session whose refresh is out, so it is served
    /// after the refresh's answer (`Ok`; a session that sends too many
    /// meanwhile is closed instead). `Err` gives back a frame that need not
    /// wait.
    pub(super) fn hold_during_refresh(&mut self, id: SessionId, frame: Frame) -> Result<(), Frame> {
        if !matches!(frame, Frame::Text(_) | Frame::Binary(_)) {
            return Err(frame);
        }
        let Some(held) = self.guard.refreshing.get_mut(&id) else {
            return Err(frame);
        };
        if held.len() < MAX_HELD_DURING_REFRESH {
            held.push_back(frame);
        } else {
            self.guard.refreshing.remove(&id);
            let _ = self.hub.close(
                id,
                codes::POLICY,
                "too many messages while a token refresh was verified",
            );
        }
        Ok(())
    }

    fn refresh_accepted(&mut self, id: SessionId, user: U) {
        if self.hub.replace_auth(id, user.clone()).is_err() {
            return;
        }
        self.guard_metrics.refreshes += 1;
        let topics: Vec<String> = self
            .hub
            .topics_of(id)
            .map(|topics| topics.map(str::to_owned).collect())
            .unwrap_or_default();
        for topic in topics {
            let policy = &*self.policy;
            let allowed = match sync_scope(&topic) {
                Some(scope) => scope_maps_to_itself(policy, &user, scope),
                None => policy.authorize_topic(&user, &topic, Command::Subscribe),
            };
            if !allowed {
                let _ = self.hub.unsubscribe(id, &topic);
                let message =
                    format!("subscription to {topic} ended: the new token does not allow it");
                let _ = self
                    .hub
                    .send_error_frame(id, ErrorCode::Forbidden, &message);
            }
        }
        self.watch_expiry(id, &user);
        let _ = self.hub.send(id, REFRESH_TOPIC, br#"{"ok":true}"#);
    }

    /// Arms (or moves) the session's expiry deadline from its credential;
    /// one already past closes it at once.
    pub(super) fn watch_expiry(&mut self, id: SessionId, user: &U) {
        let Some(expires) = self.policy.expires_at(user) else {
            self.guard.set_expiry(id, None);
            return;
        };
        let left = expires
            .as_millis()
            .saturating_sub(self.wall_now().as_millis());
        if left == 0 {
            self.guard.set_expiry(id, None);
            self.expire(id);
            return;
        }
        let at = self.now.checked_add(Duration::from_millis(left));
        self.guard.set_expiry(id, at);
    }

    fn expire(&mut self, id: SessionId) {
        self.guard_metrics.tokens_expired += 1;
        let _ = self.hub.close(
            id,
            codes::TOKEN_EXPIRED,
            "token expired: refresh it before it expires",
        );
    }

    /// Closes the sessions whose credential expired by `now`.
    pub(super) fn expire_due(&mut self, now: Instant) {
        for id in self.guard.take_expired(now) {
            self.expire(id);
        }
    }

    /// Starts the rate limit of a new session (full allowance).
    pub(super) fn admit_session(&mut self, id: SessionId) {
        if let Some(limit) = self.config.message_rate {
            let bucket = Bucket {
                tokens: TokenBucket::full(limit, self.now),
                dropped: 0,
            };
            self.guard.buckets.insert(id, bucket);
        }
    }

    /// Whether a frame read from the session may reach the hub: data frames
    /// spend the session's allowance; control frames always pass.
    pub(super) fn admit_frame(&mut self, id: SessionId, frame: &Frame) -> bool {
        if !matches!(frame, Frame::Text(_) | Frame::Binary(_)) {
            return true;
        }
        let (Some(limit), Some(bucket)) =
            (self.config.message_rate, self.guard.buckets.get_mut(&id))
        else {
            return true;
        };
        match admit(bucket, limit, self.now) {
            Verdict::Pass => true,
            Verdict::Drop => {
                self.guard_metrics.messages_limited += 1;
                false
            }
            Verdict::Warn => {
                self.guard_metrics.messages_limited += 1;
                let message = format!(
                    "too many messages: at most {} per second (bursts of {}); this one was dropped",
                    limit.per_second, limit.burst
                );
                let _ = self
                    .hub
                    .send_error_frame(id, ErrorCode::RateLimited, &message);
                false
            }
            Verdict::Close => {
                self.guard_metrics.messages_limited += 1;
                self.guard_metrics.sessions_limited += 1;
                let _ = self
                    .hub
                    .close(id, codes::RATE_LIMITED, "message rate limit exceeded");
                false
            }
        }
    }

    /// A `refresh` message: its token goes out to be verified.
    pub(super) fn refresh_requested(&mut self, id: SessionId, data: &Bytes) {
        let token = serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| v.get("token")?.as_str().map(str::to_owned));
        match token {
            Some(token) => {
                self.guard.refreshing.entry(id).or_default();
                self.emit(Output::Refresh { id, token });
            }
            None => {
                let _ = self.hub.send_error_frame(
                    id,
                    ErrorCode::BadData,
                    r#"refresh needs data {"token": string}"#,
                );
            }
        }
    }
}
