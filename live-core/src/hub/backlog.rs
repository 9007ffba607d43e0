//! Replays longer than the send queue: what a recovering client missed is
//! bounded by the history it comes from, not by the send queue, so it is
//! sent as fast as the client takes it instead of closing the client as
//! slow. What does not fit waits in the session's backlog and moves into the
//! send queue as flush reports make room; everything sent to the session
//! meanwhile waits behind it, so the order stays replay first, then live.
//! A client that stops reading fills the backlog past its limit (the replay
//! plus one send queue of live frames) and is closed as slow, as it would
//! have been without a replay. The backlog ends once it is empty and the
//! send queue is at most half full: the replay's last frames fill the queue,
//! and live frames arriving just then wait their turn instead of finding it
//! full.

use bytes::Bytes;

use super::Hub;
use crate::OutFrame;
use crate::session::{Backlog, Session};

/// Where a frame for `s` goes when a backlog holds the session's queue:
/// `None` without one (queue it as usual); `Some(true)` when it was put
/// behind the backlog; `Some(false)` when the backlog is full and the
/// session must be closed as slow.
pub(super) fn behind_backlog<A>(
    s: &mut Session<A>,
    frame: impl FnOnce() -> OutFrame,
) -> Option<bool> {
    let b = s.backlog.as_mut()?;
    if b.frames.len() >= b.limit {
        return Some(false);
    }
    b.frames.push_back(frame());
    Some(true)
}

/// Whether an empty backlog may end: the send queue is at most half full.
fn backlog_done(queued_messages: usize, max_queued: usize) -> bool {
    queued_messages.saturating_mul(2) <= max_queued
}

impl<A> Hub<A> {
    /// Queues `frames` (a replay) for the session at `key`: what fits now
    /// goes to the send queue, the rest to the session's backlog.
    pub(super) fn enqueue_replay(&mut self, key: usize, frames: impl IntoIterator<Item = Bytes>) {
        let mut frames = frames.into_iter().map(OutFrame::Text).peekable();
        while let Some(s) = self.sessions.get(key) {
            if s.backlog.is_some() {
                break;
            }
            let Some(frame) = frames.peek() else {
                return;
            };
            if !self.fits(s.queued_messages, s.queued_bytes, frame.len()) {
                break;
            }
            if let Some(frame) = frames.next() {
                self.push_send(key, frame);
            }
        }
        let max_queued = self.config.limits.max_queued_messages;
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        if s.backlog.is_none() {
            self.backlogs += 1;
        }
        let backlog = s.backlog.get_or_insert_with(|| {
            Box::new(Backlog {
                frames: Default::default(),
                limit: max_queued,
            })
        });
        let before = backlog.frames.len();
        backlog.frames.extend(frames);
        backlog.limit += backlog.frames.len() - before;
        if backlog.frames.is_empty() && backlog_done(s.queued_messages, max_queued) {
            s.backlog = None;
            self.backlogs -= 1;
        }
    }

    /// Moves frames from the session's backlog into its send queue while
    /// they fit; the backlog ends when it is empty and the queue half full
    /// at most.
    pub(super) fn drain_backlog(&mut self, key: usize) {
        let max_queued = self.config.limits.max_queued_messages;
        loop {
            let Some(s) = self.sessions.get_mut(key) else {
                return;
            };
            let Some(b) = s.backlog.as_mut() else {
                return;
            };
            let Some(len) = b.frames.front().map(OutFrame::len) else {
                if backlog_done(s.queued_messages, max_queued) {
                    s.backlog = None;
                    self.backlogs -= 1;
                }
                return;
            };
            let (messages, bytes) = (s.queued_messages, s.queued_bytes);
            if !self.fits(messages, bytes, len) {
                return;
            }
            let s = &mut self.sessions[key];
            let Some(b) = s.backlog.as_mut() else {
                return;
            };
            let Some(frame) = b.frames.pop_front() else {
                return;
            };
            self.push_send(key, frame);
        }
    }
}
