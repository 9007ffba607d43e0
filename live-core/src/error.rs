//! Errors: [`HubError`] for mistakes of the calling code, [`ErrorCode`] for the
//! error frames a misbehaving client receives.

use crate::SessionId;

/// A mistake of the code driving the hub. Peer faults never produce one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// No open session has this id (it never existed, or it is closed).
    #[error("no open session {0}")]
    UnknownSession(SessionId),
    /// The session was already authenticated.
    #[error("session {0} is already authenticated")]
    AlreadyAuthenticated(SessionId),
    /// The session has not been authenticated yet, so it cannot be given topics.
    #[error("session {0} is not authenticated yet")]
    NotAuthenticated(SessionId),
    /// The topic is empty or longer than the limit.
    #[error("invalid topic: {0}")]
    InvalidTopic(&'static str),
    /// `data` is not one valid JSON value.
    #[error("data is not valid JSON: {0}")]
    InvalidJson(String),
    /// A flush report claims more than the hub handed out.
    #[error(
        "session {id} flushed {messages} messages / {bytes} bytes but only {queued_messages} / {queued_bytes} were queued"
    )]
    FlushedTooMuch {
        /// The session.
        id: SessionId,
        /// Messages reported.
        messages: usize,
        /// Bytes reported.
        bytes: usize,
        /// Messages outstanding.
        queued_messages: usize,
        /// Bytes outstanding.
        queued_bytes: usize,
    },
    /// A close code that may not be sent (RFC 6455 section 7.4).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// The hub has shut down.
    #[error("the hub has shut down")]
    ShutDown,
}

/// The `code` of an error frame `{"topic":"error","data":{"code":...,"message":...}}`
/// sent to a client whose message could not be served. The connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `bad_json`: the message is not valid JSON, or not a JSON object.
    BadJson,
    /// `bad_topic`: the envelope's `topic` (or a command's target `topic`) is
    /// missing, not a string, empty, or the reserved `error` topic.
    BadTopic,
    /// `bad_data`: a command's `data` is not an object.
    BadData,
    /// `topic_too_long`: a topic over the length limit.
    TopicTooLong,
    /// `too_many_topics`: a subscribe past the per-session topic limit.
    TooManyTopics,
    /// `unknown_command`: a message that is not a built-in command while the hub
    /// does not hand messages to the application.
    UnknownCommand,
    /// `forbidden`: the authorizer refused, or a client tried to publish on a
    /// `sync:` topic.
    Forbidden,
    /// `authorize_timeout`: an authorization question went unanswered.
    AuthorizeTimeout,
    /// `unauthorized`: a credential (such as a refreshed token) was refused.
    Unauthorized,
    /// `token_expired`: the credential offered has expired.
    TokenExpired,
    /// `rate_limited`: the session sends faster than it is allowed to; the
    /// message was dropped.
    RateLimited,
}

impl ErrorCode {
    /// The code string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadTopic => "bad_topic",
            ErrorCode::BadData => "bad_data",
            ErrorCode::TopicTooLong => "topic_too_long",
            ErrorCode::TooManyTopics => "too_many_topics",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::AuthorizeTimeout => "authorize_timeout",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}
