//! The application's authorization decisions, as the server core asks them.
//!
//! They are pure and synchronous: they decide from the authenticated value
//! alone, which is what keeps them cheap enough to run on every subscribe and
//! every sync request inside the state machine. Authentication, which may
//! need IO, happens before a connection or request reaches the core.

use live_core::{Command, HistoryLimits};
use sync_core::Timestamp;

/// Authorization of sync scopes and live topics for an authenticated user.
pub trait Policy<U> {
    /// Maps a claimed sync scope to the authoritative one for `user`, or
    /// refuses it (`Err(reason)`: 403 `forbidden` for the whole request).
    /// Also decides subscriptions to `sync:<scope>`: allowed only when this
    /// returns `Ok` with the scope unchanged. Empty claims arrive as
    /// `_default`.
    fn authorize_scope(&self, user: &U, scope: &str) -> Result<String, String> {
        let _ = user;
        Ok(scope.to_owned())
    }

    /// May `user` run the built-in `command` on this ordinary (non-`sync:`)
    /// topic? Publishing on `sync:` topics is refused by the hub whatever
    /// this says.
    fn authorize_topic(&self, user: &U, topic: &str, command: Command) -> bool {
        let _ = (user, topic, command);
        true
    }

    /// When `user`'s credential ends (wall time), if it does: a session
    /// still open then is closed with 4001 unless a refresh replaced the
    /// credential before. Asked when a session opens and after each refresh.
    fn expires_at(&self, user: &U) -> Option<Timestamp> {
        let _ = user;
        None
    }

    /// The user `user`'s sessions show in presence (`"user"` of `join`,
    /// `leave` and `presence` answers); `None` shows `null`. Default `None`.
    fn presence_user(&self, user: &U) -> Option<String> {
        let _ = user;
        None
    }

    /// The history `topic` keeps, deciding before the configured rules
    /// (`HubConfig::history`); `None` (the default) leaves it to them.
    /// Asked on every publish to a topic without a history running, so it
    /// must be cheap.
    fn history(&self, topic: &str) -> Option<HistoryLimits> {
        let _ = topic;
        None
    }
}

/// Everything allowed: every scope as claimed, every topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl<U> Policy<U> for AllowAll {}

/// True when `user` may subscribe to `sync:<scope>`: the policy maps the
/// scope to itself.
pub(crate) fn scope_maps_to_itself<U, P: Policy<U> + ?Sized>(
    policy: &P,
    user: &U,
    scope: &str,
) -> bool {
    matches!(policy.authorize_scope(user, scope), Ok(s) if s == scope)
}

/// The hub's authorizer backed by a [`Policy`]: ordinary topics by
/// [`Policy::authorize_topic`], `sync:<scope>` subscriptions by
/// [`Policy::authorize_scope`] (allowed only when the scope maps to itself).
pub(crate) struct PolicyAuthorizer<P>(pub(crate) std::sync::Arc<P>);

impl<U, P: Policy<U> + Send + Sync> live_core::Authorizer<U> for PolicyAuthorizer<P> {
    fn authorize_topic(
        &mut self,
        request: &live_core::AuthorizeRequest<'_, U>,
    ) -> live_core::Decision {
        decision(
            self.0
                .authorize_topic(request.auth, request.topic, request.command),
        )
    }

    fn authorize_scope(
        &mut self,
        request: &live_core::AuthorizeRequest<'_, U>,
    ) -> live_core::Decision {
        decision(
            request
                .scope()
                .is_some_and(|scope| scope_maps_to_itself(&*self.0, request.auth, scope)),
        )
    }

    fn presence_user(&mut self, auth: &U) -> Option<String> {
        self.0.presence_user(auth)
    }
}

/// The hub's history policy backed by a [`Policy`] (for users of type `U`:
/// the question itself names no user).
pub(crate) struct PolicyHistory<P, U>(
    pub(crate) std::sync::Arc<P>,
    pub(crate) std::marker::PhantomData<fn() -> U>,
);

impl<U, P: Policy<U> + Send + Sync> live_core::HistoryPolicy for PolicyHistory<P, U> {
    fn history(&self, topic: &str) -> Option<HistoryLimits> {
        self.0.history(topic)
    }
}

fn decision(allowed: bool) -> live_core::Decision {
    if allowed {
        live_core::Decision::Allow
    } else {
        live_core::Decision::Deny
    }
}
