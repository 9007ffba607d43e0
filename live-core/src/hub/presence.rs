//! Presence on the hub's side: announcing joins and leaves to the sessions
//! watching a topic, and answering `presence` queries.

use bytes::Bytes;

use super::Hub;
use crate::presence::{encode_change, encode_list};
use crate::{Action, CloseReason, OutFrame, SessionId};

/// Which change a presence frame announces.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    Join,
    Leave,
}

impl<A> Hub<A> {
    /// Tells the watchers of `topic` (except the session itself) that the
    /// session at `key` joined or left it. The session must still be in the
    /// slab.
    pub(super) fn announce(&mut self, change: Change, topic: &str, key: usize) {
        if self.watchers.is_empty() {
            return;
        }
        let targets = self.watchers.others(topic, key);
        if targets.is_empty() {
            return;
        }
        let Some(s) = self.sessions.get(key) else {
            return;
        };
        let user = s.auth().and_then(|a| self.authorizer.presence_user(a));
        let kind = match change {
            Change::Join => "join",
            Change::Leave => "leave",
        };
        let frame = encode_change(kind, topic, s.id, user.as_deref());
        self.send_shared(&targets, frame);
    }

    /// Answers a presence query: every subscriber of `topic`, in a
    /// deterministic order.
    pub(super) fn answer_presence(&mut self, key: usize, topic: &str) {
        let keys: Vec<usize> = self
            .topics
            .get(topic)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        let members: Vec<(SessionId, Option<String>)> = keys
            .into_iter()
            .filter_map(|k| self.sessions.get(k))
            .map(|s| {
                let user = s.auth().and_then(|a| self.authorizer.presence_user(a));
                (s.id, user)
            })
            .collect();
        let frame = encode_list(topic, members.iter().map(|(s, u)| (*s, u.as_deref())));
        self.enqueue(key, OutFrame::Text(frame));
    }

    /// Queues one shared frame for each of `keys` still open; closes those
    /// whose queue overflows, after the others were served.
    fn send_shared(&mut self, keys: &[usize], frame: Bytes) {
        let len = frame.len();
        let mut overflowed = Vec::new();
        for &key in keys {
            let Some(s) = self.sessions.get(key) else {
                continue;
            };
            let (messages, bytes) = (s.queued_messages, s.queued_bytes);
            if !self.fits(messages, bytes, len) {
                overflowed.push(key);
                continue;
            }
            let s = &mut self.sessions[key];
            s.queued_messages += 1;
            s.queued_bytes = s.queued_bytes.saturating_add(len);
            self.metrics.messages_out += 1;
            self.metrics.bytes_out += len as u64;
            self.actions.push_back(Action::Send {
                id: s.id,
                frame: OutFrame::Text(frame.clone()),
            });
        }
        for key in overflowed {
            if self.sessions.contains(key) {
                self.close_key(key, CloseReason::SlowConsumer);
            }
        }
    }
}
