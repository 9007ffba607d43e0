//! A sync request as it arrives over HTTP, before the core parses it.

/// One HTTP request to a sync endpoint, as the loop read it.
#[derive(Debug, Clone, Copy)]
pub struct HttpSync<'a> {
    /// `GET` or `POST` (others are refused with 405).
    pub method: &'a str,
    /// The path after the sync prefix: `/push`, `/pull`, `/snapshot`.
    pub path: &'a str,
    /// The query string (`scope=...&cursor=...` for GET), without `?`.
    pub query: &'a str,
    /// The body, or why it could not be read.
    pub body: Body<'a>,
}

/// A request body as the loop read it under the configured limit.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Body<'a> {
    /// The whole body (empty for GET).
    Read(&'a [u8]),
    /// The body is, or declared itself, longer than the limit (413).
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The transport failed while reading (400).
    Unreadable {
        /// What failed.
        message: &'a str,
    },
}
