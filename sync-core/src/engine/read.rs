//! Pull and snapshot: answered from the committed view only, so a reader
//! never sees a change, a state or a client sequence that is not durable.

use serde::Serialize;

use super::Engine;
use super::log::PullRefusal;
use crate::app::App;
use crate::handler::Response;
use crate::protocol::{
    Change, DEFAULT_SCOPE, ErrorCode, PullRequest, PullResponse, SnapshotRequest, SnapshotResponse,
};

/// A pull page borrowing the log; serializes exactly like [`PullResponse`].
#[derive(Serialize)]
struct PullPage<'a> {
    changes: Vec<&'a Change>,
    has_more: bool,
    next_cursor: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_seq: Option<u64>,
}

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
        let p = self.pull_page(req)?;
        Ok(PullResponse {
            changes: p.changes.into_iter().cloned().collect(),
            has_more: p.has_more,
            next_cursor: p.next_cursor,
            client_seq: p.client_seq,
        })
    }

    /// [`Engine::handle_pull`] encoded straight from the log, without copying
    /// the changes first (what [`Engine::handle_request`] uses).
    pub fn handle_pull_encoded(&self, req: &PullRequest) -> Response {
        match self.pull_page(req) {
            Ok(page) => Response::ok(&page),
            Err(e) => e,
        }
    }

    fn pull_page(&self, req: &PullRequest) -> Result<PullPage<'_>, Response> {
        let scope = scope_of(&req.scope);
        let limit = if req.limit == 0 {
            self.config.default_pull_limit
        } else {
            req.limit
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let Some(s) = self.scopes.get(scope) else {
            if req.cursor == 0 {
                return Ok(PullPage {
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
        let changes: Vec<&Change> = page.entries.iter().map(|e| &e.change).collect();
        let next_cursor = changes.last().map_or(req.cursor, |c| c.cursor);
        let client_seq = match (&req.client_id, page.has_more) {
            (Some(c), false) => Some(s.committed.client_seq(c)),
            _ => None,
        };
        Ok(PullPage {
            changes,
            has_more: page.has_more,
            next_cursor,
            client_seq,
        })
    }

    /// [`Engine::handle_snapshot`] encoded with [`App::snapshot_json`]
    /// (what [`Engine::handle_request`] uses); the same bytes as encoding the
    /// typed response.
    pub fn handle_snapshot_encoded(&self, req: &SnapshotRequest) -> Response {
        let scope = scope_of(&req.scope);
        let (data, cursor, seq) = match self.scopes.get(scope) {
            Some(s) => (
                self.app.snapshot_json(&s.committed.state),
                s.log.committed_head(),
                req.client_id.as_ref().map(|c| s.committed.client_seq(c)),
            ),
            None => (
                self.app.snapshot_json(&A::State::default()),
                0,
                req.client_id.as_ref().map(|_| 0),
            ),
        };
        let mut body = Vec::with_capacity(data.len() + 48);
        body.extend_from_slice(b"{\"data\":");
        body.extend_from_slice(&data);
        body.extend_from_slice(format!(",\"cursor\":{cursor}").as_bytes());
        if let Some(seq) = seq {
            body.extend_from_slice(format!(",\"client_seq\":{seq}").as_bytes());
        }
        body.push(b'}');
        Response {
            status: 200,
            body: body.into(),
        }
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
