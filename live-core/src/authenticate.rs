//! Authentication answers: a session becomes active with a value of the
//! application's type `A`, or is refused with a [`Rejection`].

use crate::close::codes;

/// A refusal to authenticate a session. The session is closed with `code` and
/// `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The close code; one a server may not send is replaced by 1008.
    pub code: u16,
    /// The close reason (cut to 123 bytes).
    pub reason: String,
}

impl Rejection {
    /// A policy-violation (1008) rejection with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            code: codes::POLICY,
            reason: reason.into(),
        }
    }
}
