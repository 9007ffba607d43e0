//! Authorization of client commands: a synchronous [`Authorizer`] that may defer
//! any question to the application as an [`Event::Authorize`](crate::Event::Authorize).
//!
//! Sync topics (`sync:<scope>`) follow stricter rules enforced by the hub itself,
//! whatever the authorizer says about ordinary topics:
//! - no client may publish on a `sync:` topic (only server code pokes them);
//! - a subscription to `sync:<scope>` is decided only by
//!   [`Authorizer::authorize_scope`], whose default asks the application, so a
//!   permissive topic rule can never open a scope by accident;
//! - unsubscribing needs no permission.

use crate::{Command, SessionId};

/// The answer to one authorization question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refuse: the client gets a `forbidden` error frame.
    Deny,
    /// Ask the application: the hub emits [`Event::Authorize`](crate::Event::Authorize)
    /// and waits for [`Hub::handle_authorize`](crate::Hub::handle_authorize).
    Ask,
}

/// One authorization question.
#[derive(Debug)]
pub struct AuthorizeRequest<'a, A> {
    /// The session asking.
    pub id: SessionId,
    /// Its authentication value.
    pub auth: &'a A,
    /// What it asks to do.
    pub command: Command,
    /// The topic. For [`Authorizer::authorize_scope`] this is the whole
    /// `sync:<scope>` topic.
    pub topic: &'a str,
}

impl<A> AuthorizeRequest<'_, A> {
    /// The scope when the topic is a sync topic `sync:<scope>`.
    pub fn scope(&self) -> Option<&str> {
        sync_scope(self.topic)
    }
}

/// Synchronous authorization policy. Both methods have defaults: ordinary topics
/// are allowed, sync scopes are asked of the application.
pub trait Authorizer<A>: Send {
    /// May this session subscribe to, unsubscribe from or publish on this ordinary
    /// (non-`sync:`) topic?
    fn authorize_topic(&mut self, request: &AuthorizeRequest<'_, A>) -> Decision {
        let _ = request;
        Decision::Allow
    }

    /// May this session subscribe to `sync:<scope>` (`request.scope()`)?
    fn authorize_scope(&mut self, request: &AuthorizeRequest<'_, A>) -> Decision {
        let _ = request;
        Decision::Ask
    }

    /// The user a session's presence shows (`"user"` in `join`, `leave` and
    /// `presence` answers), derived from its authentication value; `None`
    /// shows `null`. Default `None`.
    fn presence_user(&mut self, auth: &A) -> Option<String> {
        let _ = auth;
        None
    }
}

/// The default policy: ordinary topics allowed, sync scopes asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultAuthorizer;

impl<A> Authorizer<A> for DefaultAuthorizer {}

/// Prefix of sync topics.
pub const SYNC_PREFIX: &str = "sync:";

/// The scope of a sync topic (`sync:<scope>`), `None` for an ordinary topic.
pub fn sync_scope(topic: &str) -> Option<&str> {
    topic.strip_prefix(SYNC_PREFIX)
}
