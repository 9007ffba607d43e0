//! The error codes of the sync protocol and the HTTP status each maps to.

use serde::{Deserialize, Serialize};

/// A protocol error code, written as the `code` string of an error body or of a
/// failed mutation result. The names and statuses are go-mizu's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// A malformed request or mutation (400).
    #[serde(rename = "invalid_mutation")]
    Invalid,
    /// The caller may not use this scope (403).
    Forbidden,
    /// An unknown path or entity (404).
    NotFound,
    /// The method is not allowed on this path (405).
    MethodNotAllowed,
    /// The mutation conflicts with the current state, or a client sequence gap (409).
    Conflict,
    /// The pull cursor lies before the retained log, or after its head (410).
    CursorTooOld,
    /// The request body is larger than the configured limit (413).
    PayloadTooLarge,
    /// A transient server failure; the request may be retried (500).
    #[serde(rename = "internal_error")]
    Internal,
    /// Nothing was applied because the store could not be reached, or other
    /// writers kept winning the scope; retry (503).
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status of a whole-request error with this code.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::Invalid => 400,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::CursorTooOld => 410,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The wire string (`"invalid_mutation"`, `"cursor_too_old"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Invalid => "invalid_mutation",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::CursorTooOld => "cursor_too_old",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Internal => "internal_error",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// Parses a wire string; unknown codes are `None`.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "invalid_mutation" => ErrorCode::Invalid,
            "forbidden" => ErrorCode::Forbidden,
            "not_found" => ErrorCode::NotFound,
            "method_not_allowed" => ErrorCode::MethodNotAllowed,
            "conflict" => ErrorCode::Conflict,
            "cursor_too_old" => ErrorCode::CursorTooOld,
            "payload_too_large" => ErrorCode::PayloadTooLarge,
            "internal_error" => ErrorCode::Internal,
            "unavailable" => ErrorCode::Unavailable,
            _ => return None,
        })
    }
}

/// The JSON body of a whole-request error: `{"code": .., "error": ..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code, one of [`ErrorCode`]'s wire strings.
    pub code: String,
    /// Human-readable explanation.
    pub error: String,
}

impl ErrorBody {
    /// An error body with `code` and message `error`.
    pub fn new(code: ErrorCode, error: impl Into<String>) -> Self {
        ErrorBody {
            code: code.as_str().to_owned(),
            error: error.into(),
        }
    }
}
