//! Pull and snapshot: answered from the committed view only, so a reader
//! never sees a change, a state or a client sequence that is not durable.

use super::Engine;
use super::log::PullRefusal;
use crate::app::App;
use crate::handler::Response;
use crate::protocol::{
    DEFAULT_SCOPE, ErrorCode, PullRequest, PullResponse, SnapshotRequest, SnapshotResponse,
};

fn scope_of(s: &str) -> &str {
    if s.is_empty() { DEFAULT_SCOPE } else { s }
}

impl<A: App> Engine<A> {
    /// Durable changes after `req.cursor`. A page holds at most `req.limit`
    /// changes (0 means the configured default) except when one mutation's
    /// changes alone exceed it: pages never split a mutation. Errors are 410
    /// `cursor_too_old` responses when the cursor lies before the retained
    /// log or after the durable head (the client must snapshot).
    pub fn handle_pull(&self, req: &PullRequest) -> Result<PullResponse, Response> {
        let scope = scope_of(&req.scope);
        let limit = if req.limit == 0 {
            self.config.default_pull_limit
        } else {
            req.limit
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let Some(s) = self.scopes.get(scope) else {
            if req.cursor == 0 {
                return Ok(PullResponse {
                    changes: Vec::new(),
                    has_more: false,
                    next_cursor: 0,
                    client_seq: req.client_id.as_ref().map(|_| 0),
                });
            }
            return Err(Response::error(
                ErrorCode::CursorTooOld,
                format!("cursor {} is ahead of scope {scope:?} (head 0)", req.cursor),
            ));
        };
        let page = s.log.pull(req.cursor, limit).map_err(|r| match r {
            PullRefusal::TooOld { first_kept } => Response::error(
                ErrorCode::CursorTooOld,
                format!(
                    "cursor {} was trimmed; the log starts after {}",
                    req.cursor,
                    first_kept - 1
                ),
            ),
            PullRefusal::Ahead { head } => Response::error(
                ErrorCode::CursorTooOld,
                format!(
                    "cursor {} is ahead of scope {scope:?} (head {head})",
                    req.cursor
                ),
            ),
        })?;
        let changes: Vec<_> = page.entries.iter().map(|e| e.change.clone()).collect();
        let next_cursor = changes.last().map_or(req.cursor, |c| c.cursor);
        let client_seq = match (&req.client_id, page.has_more) {
            (Some(c), false) => Some(s.committed.client_seq(c)),
            _ => None,
        };
        Ok(PullResponse {
            changes,
            has_more: page.has_more,
            next_cursor,
            client_seq,
        })
    }

    /// The durable state of a scope with its cursor and, if asked, the
    /// client's last applied sequence, all read from the same committed view.
    pub fn handle_snapshot(&self, req: &SnapshotRequest) -> SnapshotResponse {
        let scope = scope_of(&req.scope);
        match self.scopes.get(scope) {
            Some(s) => SnapshotResponse {
                data: self.app.snapshot(&s.committed.state),
                cursor: s.log.committed_head(),
                client_seq: req.client_id.as_ref().map(|c| s.committed.client_seq(c)),
            },
            None => SnapshotResponse {
                data: self.app.snapshot(&A::State::default()),
                cursor: 0,
                client_seq: req.client_id.as_ref().map(|_| 0),
            },
        }
    }
}
